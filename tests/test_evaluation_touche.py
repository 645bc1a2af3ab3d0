import csv
import zlib
from pathlib import Path

import numpy as np
import pytest

import workbench.evaluation.touche as touche
from workbench.cli import main
from workbench.evaluation.judges import load_judge
from workbench.evaluation.touche import (
    ATTRIBUTION,
    CATEGORY_MAP,
    grouped_folds,
    load_touche_judges,
    read_touche,
    shipped_judge_path,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "touche23"
CATEGORIES = [c for cats in CATEGORY_MAP.values() for c in cats] + ["Face", "Humility"]


def fake_touche(folder: Path, n_topics: int = 8, per_topic: int = 6) -> Path:
    """A Touché-format folder with made-up arguments: the first category column follows a keyword."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with (folder / "arguments-training.tsv").open("w", encoding="utf-8", newline="") as fa, \
            (folder / "labels-training.tsv").open("w", encoding="utf-8", newline="") as fl:
        wa, wl = csv.writer(fa, delimiter="\t"), csv.writer(fl, delimiter="\t")
        wa.writerow(["Argument ID", "Conclusion", "Stance", "Premise"])
        wl.writerow(["Argument ID", *CATEGORIES])
        for t in range(n_topics):
            for i in range(per_topic):
                aid = f"A{t:02d}{i:02d}"
                labels = (rng.random(len(CATEGORIES)) < 0.2).astype(int)
                labels[0] = i % 2
                wa.writerow([aid, f"We should do thing {t}", "in favor of", f"premise {i} of {t} kw{labels[0]}"])
                wl.writerow([aid, *labels])
    return folder


def cheap_embed(texts, **_):
    """Deterministic stand-in for MiniLM: a few hashed features per text."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, t in enumerate(texts):
        out[i, zlib.crc32(t.encode()) % 384] = 1.0
        out[i, 0] = 1.0 if "kw1" in t else -1.0
    return out


def test_grouped_folds_keep_every_group_in_one_fold_and_are_balanced():
    groups = [f"g{i % 37}" for i in range(500)]
    folds = grouped_folds(groups, k=5, seed=3)
    for g in set(groups):
        assert len({folds[i] for i in range(500) if groups[i] == g}) == 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.min() > 0 and sizes.max() - sizes.min() <= 20
    assert not np.array_equal(folds, grouped_folds(groups, k=5, seed=4))
    with pytest.raises(ValueError, match="groups"):
        grouped_folds(["a", "b"], k=5)


def test_cv_judge_never_sees_the_fold_it_scores(monkeypatch):
    n = 120
    groups = tuple(f"topic {i % 11}" for i in range(n))
    x = np.random.default_rng(0).normal(size=(n, 8))
    x[:, 0] = np.arange(n)  # column 0 identifies the row
    y = (np.arange(n) % 3 == 0).astype(int)
    seen = []
    real = touche.fit_value

    def spy(xs, ys, gs, **kw):
        seen.append((set(xs[:, 0].astype(int)), set(gs)))
        return real(xs, ys, gs, **kw)

    monkeypatch.setattr(touche, "fit_value", spy)
    prob, _ = touche.cross_validated_scores(x, y, groups, k=5)
    folds = grouped_folds(groups, 5, 0)
    assert len(seen) == 5 and prob.shape == (n,)
    for f, (rows, train_groups) in enumerate(seen):
        test = set(np.flatnonzero(folds == f))
        assert rows == set(range(n)) - test  # trained on exactly the other folds
        assert not train_groups & {groups[i] for i in test}  # no topic straddles the split


def test_train_judge_writes_a_loadable_artefact_atomically(tmp_path, monkeypatch, capsys):
    folder = fake_touche(tmp_path / "touche")
    monkeypatch.setattr(touche, "embed_texts", cheap_embed)
    out = tmp_path / "judges" / "touche.safetensors"
    assert main(["train-judge", "--touche", str(folder), "--out", str(out)]) == 0
    art = load_touche_judges(out)
    assert art.values == tuple(CATEGORY_MAP) and art.weight.shape == (10, 384)
    assert art.meta["attribution"] == ATTRIBUTION and art.meta["training_n"] == 48
    assert all(0 < t < 1 for t in art.thresholds)
    assert sorted(p.name for p in out.parent.iterdir()) == ["touche.json", "touche.safetensors"]  # no temp files
    before = out.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(touche, "fit_touche_judges", boom)
    with pytest.raises(RuntimeError):
        main(["train-judge", "--touche", str(folder), "--out", str(out)])
    assert out.read_bytes() == before
    judge = load_judge("touche", "self-direction", path=out)
    assert judge.kind == "touche" and judge.threshold == art.thresholds[0]


def test_missing_touche_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["train-judge", "--touche", str(tmp_path / "nope")]) == 2
    assert "Touché23" in capsys.readouterr().err


def test_shipped_judge_loads_and_prefers_value_laden_text():
    art = load_touche_judges()
    assert shipped_judge_path().is_file() and "CC-BY-4.0" in art.meta["attribution"]
    assert art.meta["training_n"] == 5393
    judge = load_judge("touche", "benevolence")
    p = judge.probability(["We must care for the sick and help our neighbours in need.",
                           "Taxes on imported steel should be lowered to cut costs."])
    assert p[0] > p[1]
    assert judge.judge(["We must care for the sick and help our neighbours in need."]).tolist() == [True]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"Touché23 data not found at {SHARED} (../shared/data beside the checkout)")
def test_read_real_touche_maps_twenty_categories_to_ten_values():
    data = read_touche(SHARED)
    assert len(data.texts) == 5393 and len(set(data.groups)) > 100
    assert set(data.labels) == set(CATEGORY_MAP)
    assert all(0 < data.labels[v].sum() < len(data.texts) for v in CATEGORY_MAP)
    full = read_touche(SHARED, form="full")
    assert full.texts[0].startswith(full.groups[0]) and full.texts[0].endswith(data.texts[0])
