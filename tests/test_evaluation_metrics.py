import numpy as np
import pytest
import torch

from workbench.evaluation.capability import load_mmlu, mmlu_accuracy, mmlu_predictions, wikitext_perplexity
from workbench.evaluation.metrics import (
    answer_perplexity,
    calibrate_fluency,
    control_success_rate,
    fluency_flags,
    repetition_ratio,
)


def test_control_success_rate_known_cases():
    assert control_success_rate([True, False, True, True]) == 0.75
    assert control_success_rate([False]) == 0.0
    with pytest.raises(ValueError):
        control_success_rate([])


def test_repetition_ratio_known_cases():
    assert repetition_ratio("one two three four five") == 0.0
    assert repetition_ratio("a b c a b c a b c") == pytest.approx(1 - 3 / 7)
    assert repetition_ratio("") == 0.0


def test_fluency_flags_and_calibration():
    cal = calibrate_fluency([10.0, 12.0, 11.0, 9.0], [0.0, 0.1, 0.0, 0.0], quantile=1.0, slack=1.0)
    assert cal.max_perplexity == 12.0 and cal.max_repetition == 0.2
    flags = fluency_flags(["fine text here", "", "x y z x y z x y z x y z", "too perplexing"],
                          [11.0, 5.0, 5.0, 50.0], cal)
    assert flags.tolist() == [True, False, False, False]


def test_answer_perplexity_matches_direct_computation(tiny_model):
    chats, answers = ["hello ", "a longer chat prefix "], ["world", "and its answer"]
    ppl = answer_perplexity(tiny_model, chats, answers)
    tok = tiny_model.tokenizer
    for chat, answer, got in zip(chats, answers, ppl, strict=True):
        p, a = tok(chat, add_special_tokens=False)["input_ids"], tok(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + a])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_model(ids).float(), -1)[0]
        nll = -np.mean([logp[len(p) - 1 + i, t].item() for i, t in enumerate(a)])
        assert got == pytest.approx(np.exp(nll), rel=1e-4)


def _mmlu_folder(tmp_path):
    for split in ("dev", "test"):
        (tmp_path / split).mkdir()
    header = "question,choice0,choice1,choice2,choice3,answer\n"
    (tmp_path / "dev" / "toy_dev.csv").write_text(header + "1+1?,1,2,3,4,1\n")
    (tmp_path / "test" / "toy_test.csv").write_text(header + "2+2?,4,5,6,7,0\n3+3?,5,6,7,8,1\n")
    return tmp_path


def test_mmlu_loading_and_accuracy_bounds(tiny_model, tmp_path):
    items = load_mmlu(_mmlu_folder(tmp_path), n=None, k_shot=5)
    assert len(items) == 2 and items[0].prompt.endswith("Answer:")
    assert "1+1?" in items[0].prompt and "Answer: B" in items[0].prompt
    acc = mmlu_accuracy(tiny_model, items, progress=False)
    assert acc in (0.0, 0.5, 1.0)


def test_mmlu_predictions_in_item_order_match_one_at_a_time(tiny_model, tmp_path):
    folder = _mmlu_folder(tmp_path)
    rows = "".join(f"{'xyz'[i % 3] * (3 * i)}?,{'A' * i},{'B' * (8 - i)},c{i},d,{i % 4}\n" for i in range(1, 8))
    (folder / "test" / "long_test.csv").write_text("question,choice0,choice1,choice2,choice3,answer\n" + rows)
    items = load_mmlu(folder, n=None, k_shot=1)[::-1]  # longest first: batching by length reorders them
    preds = mmlu_predictions(tiny_model, items, batch_size=3, progress=False)
    letters = [tiny_model.tokenizer(f" {x}", add_special_tokens=False)["input_ids"][-1] for x in "ABCD"]
    for item, got in zip(items, preds, strict=True):
        ids = tiny_model.tokenizer(item.prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            expected = int(tiny_model(ids)[0, -1, letters].argmax())
        assert got == expected
    acc = mmlu_accuracy(tiny_model, items, batch_size=3, progress=False)
    assert acc == np.mean(preds == np.array([it.answer for it in items]))
    assert len(set(preds.tolist())) > 1  # varied predictions, so a wrong order would show


def test_mmlu_bad_answer_is_clear_error(tmp_path):
    folder = _mmlu_folder(tmp_path)
    (folder / "test" / "bad_test.csv").write_text("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,E\n")
    with pytest.raises(ValueError, match=r"bad_test\.csv:2"):
        load_mmlu(folder, n=None)


def test_wikitext_perplexity_is_finite_and_above_one(tiny_model, tmp_path):
    path = tmp_path / "valid.txt"
    path.write_text("the quick brown fox jumps over the lazy dog " * 50)
    ppl = wikitext_perplexity(tiny_model, path, n_windows=2, window=32)
    assert 1.0 < ppl < 1e4


def test_calibration_without_any_answer_warns_and_only_counts_emptiness():
    with pytest.warns(UserWarning, match="No non-empty"):
        cal = calibrate_fluency([float("inf")], [0.0])
    assert fluency_flags(["", "some words"], [float("inf"), 1e9], cal).tolist() == [False, True]


def test_last_token_logits_equal_the_bridge_forward_also_when_steered(tiny_model):
    from helpers import synthetic_vector

    from workbench.activations import last_token_index, tokenize
    from workbench.evaluation.capability import _last_token_logits
    from workbench.steering import steer

    ids, mask = tokenize(tiny_model, ["short", "a much longer prompt with padding to its left", "mid size"])
    rows = torch.arange(3)
    for ctx in (lambda: torch.no_grad(), lambda: steer(tiny_model, synthetic_vector(tiny_model), p0=0.99)):
        with torch.no_grad(), ctx():
            fast = _last_token_logits(tiny_model, ids, mask)
        with torch.no_grad(), ctx():
            reference = tiny_model(ids, attention_mask=mask)[rows, last_token_index(mask)]
        torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        plain = _last_token_logits(tiny_model, ids, mask)
    assert not torch.allclose(plain, fast)  # the steering hooks did fire on the fast path


def test_shared_context_logits_equal_full_forwards(tiny_model):
    from workbench.evaluation.capability import shared_context_logits
    from workbench.model import plain_twin

    tok = tiny_model.tokenizer
    context = "The following are questions about toys.\n\nQ: red?\nAnswer: A\n\n"
    prompts = [context + q for q in ("Q: blue?\nAnswer:", "Q: a much longer green one?\nAnswer:", "Q: x\nAnswer:",
                                     "Q: yellow or\nAnswer:", "Q: ?\nAnswer:")]
    seqs = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    twin = plain_twin(tiny_model)
    with torch.no_grad():
        reference = torch.stack([tiny_model(torch.tensor([s]))[0, -1] for s in seqs])
        for batch_size in (2, 8):  # several batches reuse copies of one prefix cache
            torch.testing.assert_close(shared_context_logits(twin, seqs, batch_size), reference, rtol=1e-4, atol=1e-4)
        no_prefix = [seqs[0], [seqs[1][1], *seqs[1]]]  # first tokens differ: nothing is shared
        torch.testing.assert_close(shared_context_logits(twin, no_prefix), torch.stack(
            [tiny_model(torch.tensor([s]))[0, -1] for s in no_prefix]), rtol=1e-4, atol=1e-4)
        one = shared_context_logits(twin, [seqs[2]])  # a lone sequence: all but its last token is the prefix
    torch.testing.assert_close(one[0], reference[2], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at least one token"):
        shared_context_logits(twin, [seqs[0], []])
