import json

import pytest

from workbench.evaluation.judges import JudgeError, LLMJudge
from workbench.evaluation.server import model_responder, serve


def rule_responder(calls):
    def respond(messages, max_tokens):
        calls.append(messages)
        text = messages[-1]["content"]
        if "fluent English" in text:
            return "Yes" if "Text: ok" in text else "No"
        return "Yes." if "Answer: I will help" in text else "No"
    return respond


def test_llm_judge_round_trip_through_a_real_local_server(tmp_path):
    calls = []
    with serve(rule_responder(calls)) as url:
        judge = LLMJudge(base_url=url, model="local", cache_dir=tmp_path / "cache")
        verdicts = judge.judge_value("benevolence", ["q1", "q2"], ["I will help my sister.", "I will not."])
        assert verdicts == [True, False]
        assert judge.judge_fluency(["ok fine", "bad"]) == [True, False]
        n = len(calls)
        assert judge.judge_value("benevolence", ["q1"], ["I will help my sister."]) == [True]
        assert len(calls) == n  # answered from the disk cache
    rubric = calls[0][-1]["content"]
    assert "benevolence" in rubric and "pros and cons" in rubric


def test_llm_judge_against_a_server_answering_from_a_model(tiny_model):
    with serve(model_responder(tiny_model)) as url:
        reply = LLMJudge(base_url=url, model="tiny").ask("Say yes")
    assert isinstance(reply, str)


def test_non_verdict_reply_is_clear_error():
    with serve(lambda m, k: "Perhaps, it depends") as url, pytest.raises(JudgeError, match="neither Yes nor No"):
        LLMJudge(base_url=url, model="local").judge_fluency(["text"])


def test_server_down_is_clear_error_after_retries():
    judge = LLMJudge(base_url="http://127.0.0.1:9/v1", model="x", retries=1, backoff=0.01, timeout=1)
    with pytest.raises(JudgeError, match="failed after 2 tries"):
        judge.ask("hi")


def test_missing_settings_are_clear_error(monkeypatch):
    monkeypatch.delenv("WORKBENCH_JUDGE_URL", raising=False)
    with pytest.raises(JudgeError, match="WORKBENCH_JUDGE_URL"):
        LLMJudge().ask("hi")


def test_retries_on_server_errors_then_succeeds():
    import http.server
    import threading

    state = {"n": 0}

    class Flaky(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            state["n"] += 1
            if state["n"] < 3:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps({"choices": [{"message": {"content": "Yes"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = LLMJudge(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", retries=3, backoff=0.01)
        assert judge.ask("hi") == "Yes" and state["n"] == 3
    finally:
        server.shutdown()
        server.server_close()
