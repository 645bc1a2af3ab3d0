"""The P0 / CAA-coefficient sweep: the choice rule, the defaults file, and a run on a tiny model."""

import json

import numpy as np
import pytest
from helpers import synthetic_vector

from workbench.sweep import (
    FALLBACK,
    SteeringDefaults,
    SweepRow,
    _choose,
    load_defaults,
    save_defaults,
    steering_defaults,
    sweep_defaults,
)


def rows(*settings):
    return [SweepRow("power", "conva", s, csr, flu, 6, score) for s, csr, flu, score in settings]


def test_choice_is_best_csr_among_fluent_settings_ties_to_higher_score_then_weaker():
    grid = rows((0.8, 0.2, 1.0, 0.3), (0.9, 0.5, 0.9, 0.5), (0.95, 0.5, 0.85, 0.5), (0.99, 0.9, 0.3, 0.9))
    assert _choose(grid, base_fluency=1.0, min_fluency=0.8) == 0.9  # 0.99 is not fluent; 0.9 ties 0.95
    assert _choose(grid, base_fluency=1.0, min_fluency=0.2) == 0.99
    grid = rows((0.9, 0.5, 1.0, 0.50), (0.99, 0.5, 1.0, 0.61), (0.999, 0.5, 1.0, 0.55))
    assert _choose(grid, base_fluency=1.0, min_fluency=0.8) == 0.99  # same CSR: the higher mean probability
    assert _choose(rows((0.9, 0.5, 0.1, 0.5), (0.8, 0.7, 0.1, 0.7)), base_fluency=1.0, min_fluency=0.8) == 0.8


def test_defaults_file_round_trip_fallback_and_bad_file(tmp_path):
    path = save_defaults({"power": SteeringDefaults(0.99, 2.0)}, tmp_path / "d.json", {"model": "x"})
    assert load_defaults(path) == {"power": SteeringDefaults(0.99, 2.0)}
    assert json.loads(path.read_text())["meta"] == {"model": "x"}
    assert steering_defaults("Power", path) == SteeringDefaults(0.99, 2.0)
    assert steering_defaults("hedonism", path) == FALLBACK
    assert steering_defaults("power", tmp_path / "missing.json") == FALLBACK
    path.write_text('{"values": {"power": {"p0": 0.9}}}')
    with pytest.raises(ValueError, match="workbench sweep"):
        load_defaults(path)


def test_shipped_defaults_cover_every_value_with_valid_strengths():
    from workbench.values import VALUE_NAMES

    shipped = load_defaults()
    assert set(shipped) == set(VALUE_NAMES)
    assert all(0.5 < d.p0 < 1 and d.coef > 0 for d in shipped.values())


class LengthJudge:
    """Deterministic stand-in: the sweep's bookkeeping is under test here, not the judge."""

    threshold = 0.5

    def probability(self, texts, questions=None):
        return np.array([float(len(t) > 3) for t in texts])


def test_sweep_runs_every_setting_and_picks_from_the_grid(tiny_model):
    vec = synthetic_vector(tiny_model)
    table, chosen = sweep_defaults(tiny_model, {"power": vec}, p0_grid=(0.9, 0.99), coef_grid=(1.0, 8.0), n_prompts=2,
                                   max_new_tokens=3, judge_factory=lambda v: LengthJudge(), progress=False)
    assert [(r.method, r.setting) for r in table] == [("none", 0.0), ("conva", 0.9), ("conva", 0.99), ("caa", 1.0),
                                                     ("caa", 8.0)]
    assert all(r.n == 2 and 0 <= r.csr <= 1 and 0 <= r.fluency <= 1 and r.score == r.csr for r in table)
    assert chosen["power"].p0 in (0.9, 0.99) and chosen["power"].coef in (1.0, 8.0)
    with pytest.raises(ValueError, match="No vectors"):
        sweep_defaults(tiny_model, {})


def test_cli_sweep_passes_min_fluency_and_records_it(tiny_folder, tiny_model, tmp_path, monkeypatch):
    import workbench.sweep as sweep_mod
    from workbench.cli import main
    from workbench.datasets import load_pairs
    from workbench.probes import probe_value
    from workbench.vectors import save_vector

    vec = probe_value(tiny_model, load_pairs("power")[:40], exclude_last=1, fallback_top=2, progress=False)
    save_vector(vec, tmp_path / "v" / "power.safetensors")

    seen = {}

    def fake(model, vectors, **kw):
        seen.update(kw)
        return [SweepRow("power", "none", 0.0, 0.5, 1.0, 2, 0.5)], {"power": SteeringDefaults(0.9, 1.0)}

    monkeypatch.setattr(sweep_mod, "sweep_defaults", fake)
    args = ["sweep", "--values", "power", "--out", str(tmp_path / "s"), "--vectors", str(tmp_path / "v"),
            "--model", str(tiny_folder), "--device", "cpu", "--min-fluency", "0.5"]
    assert main(args) == 0
    assert seen["min_fluency"] == 0.5
    body = json.loads((tmp_path / "s" / "steering_defaults.json").read_text())
    assert body["meta"]["min_fluency"] == 0.5 and body["values"]["power"] == {"p0": 0.9, "coef": 1.0}


def test_sweep_rejects_a_fluency_floor_outside_zero_one(tiny_model):
    with pytest.raises(ValueError, match="min_fluency"):
        sweep_defaults(tiny_model, {"power": synthetic_vector(tiny_model)}, min_fluency=80)
