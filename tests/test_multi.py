import dataclasses
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from helpers import count_hooks, synthetic_vector
from scipy.optimize import minimize

from workbench.activations import tokenize
from workbench.model import hook_name
from workbench.multi import (
    ProfileConflictWarning,
    min_norm_shift,
    opposed_pairs,
    solve_profile,
    steer_profile,
)
from workbench.steering import steer

PROMPTS = ["hello there", "a longer prompt about values and choices", "x y"]


def named(model, name, seed, layers=(1, 2), bias=-8.0, weight=None):
    vec = synthetic_vector(model, layers=layers, bias=bias, seed=seed)
    return dataclasses.replace(vec, value=name, weight=vec.weight if weight is None else weight)


def logit(p):
    return math.log(p) - math.log1p(-p)


def residuals(model, ids, mask, layers, ctx=None):
    """Residuals at ``layers`` (after any steering in ``ctx``) on one forward pass."""
    seen = {}

    def grab(layer):
        def hook(x, hook):
            seen[layer] = x.detach().clone()
        return hook

    with torch.no_grad(), (ctx if ctx is not None else _null()) as record, \
            model.hooks(fwd_hooks=[(hook_name(layer), grab(layer)) for layer in layers]):
        model(ids, attention_mask=mask)
    return seen, record


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def brute_force(a, c):
    """Minimum-norm x with a @ x >= c by trying every active set (small k only)."""
    best = None
    for r in range(len(c) + 1):
        for s in itertools.combinations(range(len(c)), r):
            s = list(s)
            x = a[s].T @ np.linalg.solve(a[s] @ a[s].T, c[s]) if s else np.zeros(a.shape[1])
            if (a @ x >= c - 1e-9).all() and (best is None or np.linalg.norm(x) < np.linalg.norm(best)):
                best = x
    return best


def slsqp(a, c):
    """The same problem handed to a general-purpose solver."""
    cons = [{"type": "ineq", "fun": lambda z: a @ z - c, "jac": lambda z: a}]
    return minimize(lambda z: z @ z, np.zeros(a.shape[1]), jac=lambda z: 2 * z, method="SLSQP",
                    constraints=cons, options={"ftol": 1e-12, "maxiter": 500}).x


def test_one_value_equals_single_value_closed_form(tiny_model):
    vec = synthetic_vector(tiny_model)
    ids, mask = tokenize(tiny_model, PROMPTS)
    single, _ = residuals(tiny_model, ids, mask, vec.layers, steer(tiny_model, vec, p0=0.9))
    multi, record = residuals(tiny_model, ids, mask, vec.layers, steer_profile(tiny_model, {"power": vec}, {"power": 0.9}))
    for layer in vec.layers:
        torch.testing.assert_close(multi[layer], single[layer], rtol=0, atol=1e-6)
    assert [lp.layer for lp in record.layers] == list(vec.layers)
    for lp in record.layers:
        for row in lp.rows:
            assert row.active == ("power",) and row.feasible and row.violated == ()
            assert abs(row.p_after[0] - 0.9) < 1e-4


def test_min_norm_shift_matches_brute_force_and_scipy():
    rng = np.random.default_rng(0)
    for k, d in ((2, 8), (3, 16), (4, 6)):
        a = rng.normal(size=(k, d))
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        c = rng.normal(size=k) * 3
        x, lam = min_norm_shift(a, c)
        assert (a @ x >= c - 1e-9).all()
        assert (lam >= 0).all() and np.allclose(a.T @ lam, x)
        np.testing.assert_allclose(x, brute_force(a, c), atol=1e-8)
        ref = slsqp(a, c)
        assert (a @ ref >= c - 1e-6).all()
        assert np.linalg.norm(x) <= np.linalg.norm(ref) + 1e-6
        np.testing.assert_allclose(x, ref, atol=1e-4)


def test_two_orthogonal_constraints_have_the_analytic_shift():
    a = np.eye(3)[:2]
    x, lam = min_norm_shift(a, np.array([1.5, -2.0]))  # second already met: only the first moves
    np.testing.assert_allclose(x, [1.5, 0.0, 0.0])
    x, lam = min_norm_shift(a, np.array([1.5, 2.0]))
    np.testing.assert_allclose(x, [1.5, 2.0, 0.0])
    np.testing.assert_allclose(lam, [1.5, 2.0])


def test_two_compatible_values_meet_both_targets_with_the_shortest_shift(tiny_model):
    va, vb = named(tiny_model, "achievement", 0), named(tiny_model, "benevolence", 1)
    e = 0.1 * torch.randn(tiny_model.cfg.d_model, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    p0 = {"achievement": 0.9, "benevolence": 0.8}
    sol = solve_profile(e, {"achievement": va, "benevolence": vb}, p0, layer=1)
    assert sol.feasible and sol.gave_way == () and set(sol.active) == {"achievement", "benevolence"}
    for p, target in zip(sol.p_after, p0.values(), strict=True):
        assert p >= target - 1e-5
    w = torch.stack([va.weight[1], vb.weight[1]]).double()
    b = torch.tensor([va.bias[1], vb.bias[1]], dtype=torch.float64)
    t = torch.tensor([logit(0.9), logit(0.8)], dtype=torch.float64)
    norms = w.norm(dim=1)
    a, c = (w / norms[:, None]).numpy(), ((t - b - w @ e) / norms).numpy()
    best = brute_force(a, c)
    assert sol.shift_norm <= np.linalg.norm(best) + 1e-9
    np.testing.assert_allclose(sol.shift.numpy(), best, atol=1e-8)
    np.testing.assert_allclose(sol.shift.numpy(), slsqp(a, c), atol=1e-4)


def test_steer_profile_meets_two_targets_and_repeats_the_shift(tiny_model):
    vecs = {"achievement": named(tiny_model, "achievement", 0), "benevolence": named(tiny_model, "benevolence", 1)}
    p0 = {"achievement": 0.9, "benevolence": 0.8}
    ids, mask = tokenize(tiny_model, PROMPTS)
    plain, _ = residuals(tiny_model, ids, mask, [1, 2])
    seen = []

    def grab(x, hook):
        seen.append(x.detach().clone())

    with warnings.catch_warnings(), torch.no_grad(), steer_profile(tiny_model, vecs, p0) as record, \
            tiny_model.hooks(fwd_hooks=[(hook_name(1), grab)]):
        warnings.simplefilter("error")  # a compatible profile warns about nothing
        tiny_model(ids, attention_mask=mask)
        tiny_model(ids, attention_mask=mask)
    first, second = seen
    for name, target in p0.items():
        assert (vecs[name].prob(1, first[:, -1]) >= target - 1e-4).all()
    torch.testing.assert_close(second, first)  # prompt-once: the same shift on the later pass
    shift = torch.stack([row.shift for row in record.layers[0].rows])
    torch.testing.assert_close(first, plain[1] + shift[:, None, :])
    assert record.feasible and len(record.layers) == 2
    assert record.for_row(0)[0]["layer"] == 1 and record.for_row(0)[0]["feasible"] is True


def test_opposite_normals_with_high_targets_are_infeasible_and_name_who_gives_way(tiny_model):
    vp = named(tiny_model, "power", 0, bias=0.0)
    vu = named(tiny_model, "universalism", 0, bias=0.0, weight=-vp.weight)
    vecs, p0 = {"power": vp, "universalism": vu}, {"power": 0.9, "universalism": 0.9}
    e = torch.zeros(tiny_model.cfg.d_model, dtype=torch.float64)
    sol = solve_profile(e, vecs, p0, layer=1)
    assert not sol.feasible and sol.gave_way == ("universalism",) and sol.violated == ("universalism",)
    assert sol.clashes == (("universalism", ("power",)),)
    assert abs(sol.p_after[0] - 0.9) < 1e-6 and sol.p_after[1] < 0.5 and sol.slack[1] > 1
    flipped = solve_profile(e, vecs, p0, layer=1, priority=["universalism", "power"])
    assert flipped.gave_way == ("power",)
    x, cert = min_norm_shift(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1.0, 1.0]))
    assert x is None and (cert > 0).all()
    ids, mask = tokenize(tiny_model, PROMPTS)
    with pytest.warns(ProfileConflictWarning, match="'universalism' gives way .*conflicts with power"):
        _, record = residuals(tiny_model, ids, mask, [1], steer_profile(tiny_model, vecs, p0))
    assert not record.feasible
    assert all(row.gave_way == ("universalism",) for lp in record.layers for row in lp.rows)
    pairs = opposed_pairs(vecs)
    assert [(p.layer, p.a, p.b, p.circumplex_steps, p.schwartz_opposites) for p in pairs] == [
        (1, "power", "universalism", 5, True), (2, "power", "universalism", 5, True)]
    assert pairs[0].cosine == pytest.approx(-1.0)


def test_low_targets_on_opposite_normals_are_compatible(tiny_model):
    vp = named(tiny_model, "power", 0, bias=0.0)
    vu = named(tiny_model, "universalism", 0, bias=0.0, weight=-vp.weight)
    sol = solve_profile(torch.zeros(tiny_model.cfg.d_model), {"power": vp, "universalism": vu},
                        {"power": 0.6, "universalism": 0.3}, layer=1)
    assert sol.feasible and sol.violated == ()


def test_max_shift_makes_an_expensive_target_give_way(tiny_model):
    vecs = {"achievement": named(tiny_model, "achievement", 0), "benevolence": named(tiny_model, "benevolence", 1)}
    e = torch.zeros(tiny_model.cfg.d_model)
    p0 = {"achievement": 0.9, "benevolence": 0.9}
    free = solve_profile(e, vecs, p0, layer=1)
    alone = solve_profile(e, {"achievement": vecs["achievement"]}, {"achievement": 0.9}, layer=1)
    capped = solve_profile(e, vecs, p0, layer=1, max_shift=(alone.shift_norm + free.shift_norm) / 2)
    assert capped.gave_way == ("benevolence",) and capped.active == ("achievement",)
    torch.testing.assert_close(capped.shift, alone.shift)
    tiny = solve_profile(e, vecs, p0, layer=1, max_shift=1e-3)
    assert tiny.gave_way == ("achievement", "benevolence") and tiny.clashes[0] == ("achievement", ())
    assert tiny.shift_norm == 0.0


def test_closed_gate_leaves_rows_untouched(tiny_model):
    vecs = {"achievement": named(tiny_model, "achievement", 0), "benevolence": named(tiny_model, "benevolence", 1)}
    p0 = {"achievement": 0.9, "benevolence": 0.8}
    ids, mask = tokenize(tiny_model, PROMPTS)
    plain, _ = residuals(tiny_model, ids, mask, [2])
    closed, _ = residuals(tiny_model, ids, mask, [2], steer_profile(tiny_model, vecs, p0, gate_open=False))
    assert torch.equal(closed[2], plain[2])
    mixed, record = residuals(tiny_model, ids, mask, [2], steer_profile(tiny_model, vecs, p0, gate_open=[True, False, True]))
    assert torch.equal(mixed[2][1], plain[2][1]) and not torch.equal(mixed[2][0], plain[2][0])
    assert record.gate_open == (True, False, True) and record.layers[0].rows[1].shift_norm == 0.0


def test_hooks_removed_on_exception(tiny_model):
    vecs = {"achievement": named(tiny_model, "achievement", 0), "benevolence": named(tiny_model, "benevolence", 1)}
    before = count_hooks(tiny_model)
    with pytest.raises(RuntimeError, match="boom"), steer_profile(tiny_model, vecs, {"achievement": 0.9, "benevolence": 0.9}):
        assert count_hooks(tiny_model) == before + 2
        raise RuntimeError("boom")
    assert count_hooks(tiny_model) == before


def test_bad_profiles_are_clear_errors(tiny_model):
    va, vb = named(tiny_model, "achievement", 0), named(tiny_model, "benevolence", 1, layers=(3,))
    cases = [
        (({"achievement": va}, {"benevolence": 0.9}), "same values"),
        (({"achievement": va}, {"achievement": 1.5}), "p0\\['achievement'\\] must be a probability"),
        (({"achievement": va, "benevolence": vb}, {"achievement": 0.9, "benevolence": 0.9}), "share no steering layer"),
        (({}, {}), "non-empty"),
    ]
    for (vecs, p0), message in cases:
        with pytest.raises(ValueError, match=message), steer_profile(tiny_model, vecs, p0):
            pass
    with pytest.raises(ValueError, match="priority must list"), steer_profile(
            tiny_model, {"achievement": va}, {"achievement": 0.9}, priority=["power"]):
        pass
    with pytest.raises(ValueError, match="max_shift"), steer_profile(
            tiny_model, {"achievement": va}, {"achievement": 0.9}, max_shift=-1):
        pass
    wide = dataclasses.replace(va, weight=torch.randn(va.n_layers, 8), mean_diff=torch.zeros(va.n_layers, 8))
    with pytest.raises(ValueError, match="Probe this model"), steer_profile(tiny_model, {"a": wide}, {"a": 0.9}):
        pass
