"""The validity benchmarks' own logic: the Touché splits of the gate benchmark, the fluency agreement, MMLU pairing."""

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from test_evaluation_touche import fake_touche

from benchmarks.gate_validity import _training_texts, touche_splits
from benchmarks.judge_validity import fluency_agreement, read_answers
from workbench.evaluation.judges import load_judge
from workbench.evaluation.metrics import FluencyCalibration, fluency_flags
from workbench.evaluation.touche import read_touche
from workbench.prompts import load_value_prompts


def test_touche_splits_are_disjoint_grouped_and_cover_every_argument(tmp_path):
    data = read_touche(fake_touche(tmp_path / "t", n_topics=12))
    parts = touche_splits(data, seed=0)
    seen = np.concatenate(list(parts.values()))
    assert sorted(seen) == list(range(len(data.texts)))  # every argument once
    topics = {name: {data.groups[i] for i in idx} for name, idx in parts.items()}
    assert not topics["train"] & topics["calibration"] and not topics["train"] & topics["report"]
    assert not topics["calibration"] & topics["report"]
    assert len(parts["train"]) > len(parts["report"]) > 0


def test_touche_gate_training_uses_only_the_train_part(tmp_path):
    data = read_touche(fake_touche(tmp_path / "t", n_topics=12))
    parts = touche_splits(data, seed=0)
    pos, neg = _training_texts("self-direction", "touche", data, parts["train"])
    held = {data.texts[i] for i in np.r_[parts["calibration"], parts["report"]]}
    assert not (set(pos) | set(neg)) & held
    labelled = {data.texts[i] for i in parts["train"] if data.labels["self-direction"][i] == 1}
    assert labelled <= set(pos) and not labelled & set(neg)
    assert set(load_value_prompts("self-direction")[0]) <= set(pos)
    assert _training_texts("power", "unrelated", data, parts["train"]) == (None, None)


def test_fluency_agreement_is_kappa_of_the_suite_flags_and_the_llm_rubric(tiny_model, tmp_path):
    folder = tmp_path / "eval"
    (folder / "generations" / "power").mkdir(parents=True)
    recs = [{"key": str(i), "prompt": "Should I lead?", "answer": a, "perplexity": p}
            for i, (a, p) in enumerate([("Yes, lead the team.", 5.0), ("no no no no no no no no", 4.0),
                                        ("", None), ("Take charge and win.", 900.0), ("Share the work.", 7.0)])]
    (folder / "generations" / "power" / "none__plain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    calibration = FluencyCalibration(max_perplexity=50.0, max_repetition=0.5)
    (folder / "fluency_calibration.json").write_text(json.dumps(calibration.__dict__))
    rows = read_answers(folder)
    got = fluency_agreement(folder, rows, tiny_model)
    flags = fluency_flags([r["answer"] for r in rows], [np.inf if r["perplexity"] is None else r["perplexity"]
                                                        for r in rows], calibration)
    assert flags.tolist() == [True, False, False, False, True]
    llm = np.asarray(load_judge("llm", None, tiny_model, rubric="fluency", cache=False).judge([r["answer"] for r in rows]))
    expected = cohen_kappa_score(flags, llm) if len(set(flags) | set(llm)) > 1 else 1.0
    assert got["n"] == 5 and got["fluent_perplexity"] == 0.4
    assert np.isclose(got["kappa"], expected) and np.isclose(got["agree"], np.mean(flags == llm))


def test_pair_check_scores_positive_sentences_against_negative_ones():
    from benchmarks.judge_pairs_check import pair_auroc
    from workbench.datasets import load_pairs

    positives = {p.positive for p in load_pairs("power")}

    class Oracle:  # P = 1 exactly on the pairs' positive sentences
        def probability(self, texts, questions):
            assert len(questions) == len(texts)
            return [float(t in positives) for t in texts]

    class Inverted(Oracle):
        def probability(self, texts, questions):
            return [1.0 - p for p in super().probability(texts, questions)]

    row = pair_auroc(Oracle(), "power", n=6, seed=1)
    assert row["auroc"] == 1.0 and row["n_pairs"] == 6 and row["mean_p_negative"] == 0.0
    assert pair_auroc(Inverted(), "power", n=6, seed=1)["auroc"] == 0.0


def test_read_position_fits_the_probes_probe_value_fits(tiny_model):
    import torch

    from benchmarks.read_position import read_position_rows
    from workbench.datasets import load_pairs
    from workbench.probes import probe_value

    n_layers, d = tiny_model.cfg.n_layers, tiny_model.cfg.d_model
    eval_acts = torch.randn(6, n_layers, d, generator=torch.Generator().manual_seed(0))
    eval_values = ["power"] * 3 + ["benevolence"] * 3
    rows = read_position_rows(tiny_model, "power", "assistant-start", eval_acts, eval_values, max_pairs=16)
    assert [r["layer"] for r in rows] == list(range(n_layers)) and {r["format"] for r in rows} == {"assistant-start"}
    pairs = load_pairs("power")
    keep = np.sort(np.random.default_rng(0).choice(len(pairs), 16, replace=False))
    vec = probe_value(tiny_model, [pairs[i] for i in keep], threshold=0.0, exclude_last=1, progress=False,
                      read_format="assistant-start")
    assert [r["test_acc"] for r in rows] == [float(a) for a in vec.test_acc]


def test_mmlu_pairing_counts_lost_and_gained_answers_and_tests_them_exactly():
    from benchmarks.mmlu_paired import paired

    answers = np.array([0, 1, 2, 3])
    row = paired(answers, np.array([0, 1, 0, 0]), np.array([0, 0, 2, 3]))
    assert (row["right_base"], row["right_other"], row["lost"], row["gained"], row["changed"]) == (2, 3, 1, 2, 3)
    assert row["p"] == pytest.approx(1.0)
    ten = np.arange(10) % 4
    assert paired(ten, ten, (ten + 1) % 4)["p"] == pytest.approx(2 * 0.5**10)  # 10 lost, none gained
    with pytest.raises(ValueError, match="one entry per question"):
        paired(answers, answers[:3], answers)
