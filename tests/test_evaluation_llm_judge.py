import numpy as np
import pytest
import torch

from workbench.evaluation.judges import JUDGE_NAMES, load_judge
from workbench.evaluation.llm_judge import LocalLLMJudge, yes_no_ids
from workbench.model import hook_name

ANSWERS = ["I will help my sister move, whatever it costs me.", "No.", "It depends; there are pros and cons to both."]
QUESTIONS = ["Should I help my sister?", "Should I help?", "What should I do about my sister's move?"]


def _reference(model, prompts):
    """softmax over exactly the Yes and No logits, from one unbatched bridge forward per prompt."""
    yes, no = yes_no_ids(model.tokenizer)
    out = []
    for p in prompts:
        ids = torch.tensor([model.tokenizer(p, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logits = model(ids)[0, -1]
        out.append(torch.softmax(logits[[yes, no]].double(), dim=-1)[0].item())
    return np.array(out)


def test_yes_probability_is_softmax_over_exactly_yes_and_no_logits(tiny_model):
    judge = LocalLLMJudge(tiny_model, "benevolence", batch_size=2, cache=False)
    prompts = judge.prompts(ANSWERS, QUESTIONS)
    np.testing.assert_allclose(judge.probability(ANSWERS, QUESTIONS), _reference(tiny_model, prompts), atol=1e-5)
    assert judge.calls[0] == len(ANSWERS)
    assert all("pros and cons" in p and "benevolence" in p and "Yes or No" in p for p in prompts)
    assert judge.judge(ANSWERS, QUESTIONS).dtype == bool


def test_yes_probability_through_the_hooked_bridge_is_the_same(tiny_model):
    """With hooks on the bridge the judge runs left-padded through it; a no-op hook changes nothing."""
    judge = LocalLLMJudge(tiny_model, "benevolence", batch_size=3, cache=False)
    expected = _reference(tiny_model, judge.prompts(ANSWERS, QUESTIONS))
    with tiny_model.hooks(fwd_hooks=[(hook_name(0), lambda t, hook: t)]):
        got = judge.probability(ANSWERS, QUESTIONS)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_disk_cache_gives_identical_verdicts_without_calling_the_model(tiny_model, tmp_path, monkeypatch):
    first = LocalLLMJudge(tiny_model, "power", cache=tmp_path)
    p1, v1 = first.probability(ANSWERS, QUESTIONS), first.judge(ANSWERS, QUESTIONS)
    assert first.calls[0] == len(ANSWERS)  # the second call came from the in-memory copy
    fresh = LocalLLMJudge(tiny_model, "power", cache=tmp_path)
    monkeypatch.setattr(LocalLLMJudge, "_compute", lambda self, prompts: pytest.fail("the model was called"))
    np.testing.assert_array_equal(fresh.probability(ANSWERS, QUESTIONS), p1)
    np.testing.assert_array_equal(fresh.judge(ANSWERS, QUESTIONS), v1)
    assert fresh.calls[0] == 0
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # one file per model fingerprint


def test_cache_keys_differ_by_rubric_and_value_and_torn_lines_are_ignored(tiny_model, tmp_path):
    a = LocalLLMJudge(tiny_model, "power", cache=tmp_path)
    a.probability(ANSWERS[:1])
    path = next(tmp_path.glob("*.jsonl"))
    path.write_text(path.read_text() + '{"key": "torn', encoding="utf-8")
    b = LocalLLMJudge(tiny_model, "tradition", cache=tmp_path)
    b.probability(ANSWERS[:1])
    c = LocalLLMJudge(tiny_model, None, rubric="fluency", cache=tmp_path)
    c.probability(ANSWERS[:1])
    assert b.calls[0] == 1 and c.calls[0] == 1
    assert "fluent" in c.prompts(ANSWERS[:1])[0]


def test_load_judge_names_and_errors(tiny_model):
    assert JUDGE_NAMES == ("touche", "llm", "pairs", "url")
    judge = load_judge("llm", "power", tiny_model, cache=False)
    assert isinstance(judge, LocalLLMJudge) and judge.kind == "llm" and judge.threshold == 0.5
    with pytest.raises(ValueError, match="Unknown judge"):
        load_judge("gpt", "power")
    with pytest.raises(ValueError, match="fluency"):
        load_judge("touche", None, rubric="fluency")
    with pytest.raises(ValueError, match="needs a value"):
        load_judge("touche", None)
    with pytest.raises(ValueError, match="rubric"):
        LocalLLMJudge(tiny_model, "power", rubric="style")


def test_url_judge_behind_the_common_interface(tmp_path):
    from workbench.evaluation.server import serve

    def respond(messages, max_tokens):
        return "Yes" if "help" in messages[-1]["content"].split("Answer:")[-1] else "No"

    with serve(respond) as url:
        judge = load_judge("url", "benevolence", "local", url=url, cache=tmp_path)
        assert judge.kind == "url"
        np.testing.assert_array_equal(judge.probability(["I will help.", "I will not."], ["q", "q"]), [1.0, 0.0])
