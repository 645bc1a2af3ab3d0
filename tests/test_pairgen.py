import json

import pytest

from workbench.chat import ChatClient, ChatError, ResponderClient
from workbench.datasets import ContrastPair, audit, read_pairs
from workbench.evaluation.server import model_responder, serve
from workbench.pairgen import PairGenError, build_messages, generate_pairs, parse_reply

NAMES = ["Anna", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
OTHERS = ["Kofi", "Lucia", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tomas"]
PLACES = ["market", "station", "library", "harbour", "stadium"]


def good(i):
    """A context-controlled pair: only 'helped' / 'refused to help' differs."""
    name, place = NAMES[i % len(NAMES)], PLACES[i // len(NAMES)]
    return {"positive": f"At the {place}, {name} helped an old neighbour carry the heavy bags home.",
            "negative": f"At the {place}, {name} refused to help an old neighbour carry the heavy bags home."}


def biased(i):
    """Both sides valid but about different topics: the audit must reject such a batch."""
    return {"positive": f"{NAMES[i]} donated warm blankets to the shelter and volunteered for charity.",
            "negative": f"{OTHERS[i]} bought a luxury yacht and gambled all weekend at the casino."}


def line(obj):
    return json.dumps(obj)


REPLIES = [
    "Sure, here are the pairs:\n" + "\n".join(f"{j + 1}. {line(good(j))}" for j in range(10)),
    "\n".join(line(biased(j)) for j in range(10)),
    'Here you go!\n```json\n{"positive": "broken\nnot json at all\n{"positive": "only one side"}\n```',
    "\n".join(line(good(j)) + "," for j in range(5, 15)),  # five repeats of the first batch, five new
    json.dumps([good(j) for j in range(15, 25)]),
]


def scripted(calls, replies):
    def respond(messages, max_tokens):
        calls.append((messages, max_tokens))
        return replies[min(len(calls), len(replies)) - 1]
    return respond


def test_generate_pairs_through_a_real_local_server(tmp_path):
    calls = []
    out = tmp_path / "pairs" / "benevolence.jsonl"
    with serve(scripted(calls, REPLIES)) as url:
        result = generate_pairs("benevolence", 25, ChatClient(url, "local", retries=0), batch_size=10, out=out,
                                progress=False)
    assert len(calls) == 5
    assert [(b.accepted, b.parsed, b.skipped_lines, b.duplicates) for b in result.batches] == [
        (True, 10, 1, 0), (False, 10, 0, 0), (False, 0, 4, 0), (True, 10, 0, 5), (True, 10, 0, 0)]
    assert result.batches[1].reason.startswith("audit: unique_share") and result.batches[1].unique_share > 0.4
    assert result.batches[2].reason == "no valid pair in the reply"
    assert len(result.rejected_batches) == 2 and len(result.accepted_batches) == 3
    expected = [ContrastPair("benevolence", good(j)["positive"], good(j)["negative"]) for j in range(25)]
    assert list(result.pairs) == expected
    assert read_pairs(out, value="benevolence") == expected
    assert audit(expected).unique_share <= 0.4 and result.audit.unique_share == audit(expected).unique_share
    assert not list(out.parent.glob(".*.tmp")) and not (tmp_path / "pairs" / "benevolence.partial.jsonl").exists()
    prompt = calls[0][0][-1]["content"]
    assert '"benevolence"' in prompt and "JSON object" in prompt and "SAME scene" in prompt and "length" in prompt
    assert calls[0][0][0]["role"] == "system" and calls[0][1] >= 10 * 60
    assert good(0)["positive"] in calls[1][0][-1]["content"]  # later requests list what not to repeat
    assert calls[4][0][-1]["content"].startswith("Write 10 new")


def test_a_relaxed_audit_accepts_the_biased_batch(tmp_path):
    with serve(scripted([], REPLIES[1:2])) as url:
        result = generate_pairs("benevolence", 10, ChatClient(url, "local"), max_unique_share=1.0,
                                out=tmp_path / "b.jsonl", progress=False)
    assert len(result.pairs) == 10 and result.audit.unique_share > 0.4


def test_running_out_of_attempts_is_a_clear_error_and_keeps_the_accepted_pairs(tmp_path):
    out = tmp_path / "power.jsonl"
    replies = REPLIES[:3]
    with serve(scripted([], replies)) as url, pytest.raises(PairGenError) as info:
        generate_pairs("power", 30, ChatClient(url, "local"), out=out, max_attempts=4, progress=False)
    message = str(info.value)
    assert "only 10 of 30 pairs for 'power' after 4 requests" in message
    assert "1 by the audit" in message and "2 without a valid pair" in message and "Raise max_attempts" in message
    assert not out.exists()
    assert len(read_pairs(tmp_path / "power.partial.jsonl", value="power")) == 10


def test_parse_reply_skips_malformed_and_bad_pairs():
    text = "\n".join([
        "- " + line({"positive": "I shared my lunch with her.", "negative": "I kept my lunch from her."}),
        "2) " + line({"positive": "Same text.", "negative": "same   text."}),  # identical sides
        line({"positive": "Short.", "negative": "A much, much longer sentence than the other one by far."}),
        '{"positive": "Bad \\ud800 escape here.", "negative": "A fine sentence here."}',
        line({"positive": 3, "negative": "not a string pair"}),
        "[",
        "   ",
        "I hope these help!",
    ])
    pairs, skipped = parse_reply(text, "Benevolence")
    assert pairs == [ContrastPair("benevolence", "I shared my lunch with her.", "I kept my lunch from her.")]
    assert skipped == 5
    assert parse_reply("", "power") == ([], 0)


def test_parse_reply_reads_pretty_printed_objects_in_code_fences():
    """How the 1.5B research model answers: each object spread over lines, each in its own fence."""
    a = {"positive": "At the office, Sarah finished her project on time.",
         "negative": "At the office, Sarah put her project off and missed the deadline."}
    b = {"positive": "At school, Emily passed the exam with top marks.", "negative": "At school, Emily failed the exam."}
    text = "Here are the pairs:\n" + "\n\n".join(f"```json\n{json.dumps(x, indent=2)}\n```" for x in (a, b))
    pairs, skipped = parse_reply(text, "achievement")
    assert [(p.positive, p.negative) for p in pairs] == [(a["positive"], a["negative"]), (b["positive"], b["negative"])]
    assert skipped == 1  # the introduction line


def test_prompt_rotates_scenes_and_names_the_value():
    first, later = build_messages("power", 4, 0), build_messages("power", 4, 1, avoid=["An earlier one."])
    assert first[1]["content"] != later[1]["content"] and "An earlier one." in later[1]["content"]
    assert "Return exactly 4 lines" in first[1]["content"] and "social status" in first[1]["content"]


def test_bad_arguments_and_transport_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown value"):
        generate_pairs("kindness", 5, ResponderClient(lambda m, k: ""), out=tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="n must be a positive"):
        generate_pairs("power", 0, ResponderClient(lambda m, k: ""), out=tmp_path / "x.jsonl")
    with pytest.raises(TypeError, match="no complete"):
        generate_pairs("power", 5, object(), out=tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="is a folder"):
        generate_pairs("power", 5, ResponderClient(lambda m, k: ""), out=tmp_path)
    with pytest.raises(ChatError, match="failed after 1 tries"):
        generate_pairs("power", 5, ChatClient("http://127.0.0.1:9/v1", "x", retries=0, timeout=1),
                       out=tmp_path / "x.jsonl", progress=False)
    with pytest.raises(ChatError, match="not the reply text"):
        ResponderClient(lambda m, k: None).complete([{"role": "user", "content": "hi"}])


@pytest.mark.filterwarnings("ignore:Some texts are longer than the context")  # the tiny model's 512-byte window
def test_local_model_backend_runs_without_a_server(tiny_model, tmp_path):
    respond = model_responder(tiny_model)
    client = ResponderClient(lambda messages, max_tokens: respond(messages, 4))  # a random model: gibberish
    with pytest.raises(PairGenError, match="only 0 of 1 pairs"):
        generate_pairs("power", 1, client, out=tmp_path / "p.jsonl", max_attempts=1, progress=False)
