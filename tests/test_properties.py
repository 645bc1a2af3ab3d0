"""Property tests of the closed-form minimal shift ``closed_form_eps`` (float64 unless stated).

For e' = e + eps * w / ||w||:  sigmoid(w.e' + b) reaches p0, eps is the smallest such shift, eps = 0
where the probe is already at p0, huge and tiny ||w|| neither overflow nor underflow, and any
non-finite input gives a clear ValueError instead of NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workbench.steering import check_probability, closed_form_eps

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Messages closed_form_eps may raise (their beginnings), for the "never NaN, always a clear error" property.
CLEAR_ERRORS = (
    "p0 must be a probability",
    "The probe weight must be finite and non-zero",
    "The probe bias must be finite",
    "The residual holds NaN or inf values",
    "Reaching p0=",
)


def logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def z_after(e: torch.Tensor, w: torch.Tensor, b: float, eps: torch.Tensor) -> torch.Tensor:
    """Probe logit w.e' + b after the shift e' = e + eps * w/||w|| (float64)."""
    v = w / w.norm()
    return (e + eps[..., None] * v) @ w + b


@st.composite
def problems(draw, scale_exp: tuple[int, int] = (-3, 3)) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """A well-conditioned problem: d <= 12, |e_i| <= 100, ||w|| in [1e-3, 1e3] (times sqrt(d)), |b| <= 50."""
    d = draw(st.integers(1, 12))
    n = draw(st.integers(1, 6))
    entries = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    w = np.asarray(draw(arrays(np.float64, d, elements=entries)))
    if not np.any(np.abs(w) > 1e-3):
        w[draw(st.integers(0, d - 1))] = draw(st.sampled_from([-1.0, 1.0]))
    scale = 10.0 ** draw(st.integers(*scale_exp))
    e = draw(arrays(np.float64, (n, d), elements=st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False)))
    b = draw(st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False))
    p0 = draw(st.floats(1e-6, 1.0 - 1e-6, allow_nan=False, exclude_min=True, exclude_max=True))
    return torch.tensor(e), torch.tensor(w * scale), b, p0


@SETTINGS
@given(problems())
@example((torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64), 0.0, 0.5))
@example((torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64), -3.0, 0.999))
def test_shift_reaches_p0(problem):
    e, w, b, p0 = problem
    eps = closed_form_eps(e, w, b, p0)
    assert eps.shape == e.shape[:-1] and eps.dtype == torch.float64
    assert torch.isfinite(eps).all() and (eps >= 0).all()
    p_after = torch.sigmoid(z_after(e, w, b, eps))
    moved = eps > 0
    assert torch.all((p_after[moved] - p0).abs() <= 1e-5), (p_after, p0)
    assert torch.all(p_after >= p0 - 1e-5)


@SETTINGS
@given(problems(), st.floats(0.0, 0.999, allow_nan=False))
def test_eps_is_the_minimal_shift(problem, fraction):
    """Any smaller shift along w leaves the probe below p0 (checked in logit space, where it is exact)."""
    e, w, b, p0 = problem
    eps = closed_form_eps(e, w, b, p0)
    target = logit(p0)
    margin = target - (e @ w + b)  # how far below p0 each row starts, in logits
    smaller = eps * fraction
    gap = (1 - fraction) * margin  # what the smaller shift still misses, in exact arithmetic
    checked = (eps > 0) & (gap > 1e-7)
    assert torch.all(z_after(e, w, b, smaller)[checked] < target)
    assert torch.all(torch.sigmoid(z_after(e, w, b, smaller))[checked] <= p0)


@SETTINGS
@given(problems())
def test_eps_is_zero_when_already_above(problem):
    e, w, b, p0 = problem
    eps = closed_form_eps(e, w, b, p0)
    z = e @ w + b
    assert torch.all(eps[z >= logit(p0) + 1e-9] == 0)
    assert torch.all(eps[z < logit(p0) - 1e-9] > 0)


@pytest.mark.parametrize("p0", [0.5, 0.999, 1e-12, 1.0 - 1e-12])
def test_extreme_p0_reached(p0):
    g = torch.Generator().manual_seed(1)
    w, e = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(50, 8, generator=g, dtype=torch.float64) * 5
    eps = closed_form_eps(e, w, 0.2, p0)
    z = z_after(e, w, 0.2, eps)
    assert torch.all(z >= logit(p0) - 1e-9)
    assert torch.allclose(z[eps > 0], torch.full_like(z[eps > 0], logit(p0)), rtol=0, atol=1e-9)
    if p0 == 0.5:  # the probe's decision boundary itself
        assert torch.allclose(torch.sigmoid(z[eps > 0]), torch.tensor(0.5, dtype=torch.float64), atol=1e-12)


@SETTINGS
@given(problems(), st.integers(-990, 990))
def test_scale_invariance_over_590_orders_of_magnitude(problem, k):
    """At p0 = 0.5 the boundary w.e + b = 0 is the same for (c w, c b): eps must not change, whatever c = 2**k."""
    e, w, b, _ = problem
    w = torch.where(w.abs() < 1e-3 * w.abs().max(), torch.zeros_like(w), w)  # keep c*w_i clear of subnormals
    c = math.ldexp(1.0, k)
    assume(b == 0 or abs(b * c) > 1e-300)  # c*b must stay an exact (normal) float64
    base = closed_form_eps(e, w, b, 0.5)
    scaled = closed_form_eps(e, w * c, b * c, 0.5)
    assert torch.isfinite(scaled).all()
    assert torch.allclose(scaled, base, rtol=1e-12, atol=0)


@SETTINGS
@given(problems(), st.sampled_from([1e-300, 1e-200, 1e-100, 1e100, 1e200, 1e300]))
def test_huge_and_tiny_weight_norms(problem, scale):
    """No overflow in ||w|| or w.e: eps is finite and reaches p0 up to float64 rounding of w.e'."""
    e, w, b, p0 = problem
    w = w / w.abs().max() * scale
    try:
        eps = closed_form_eps(e, w, b, p0)
    except ValueError as err:  # only a shift beyond float64 may be refused, and clearly
        assert str(err).startswith("Reaching p0="), err
        assert scale <= 1e-300
        return
    assert torch.isfinite(eps).all() and (eps >= 0).all()
    v = w / (w / scale).norm() / scale  # unit direction without squaring huge or tiny entries
    shift = eps[:, None] * v
    z = (e + shift) @ w + b
    # float64 cannot place e + shift closer than its rounding: the tolerance scales with |e|.|w| and |shift|.|w|
    bound = 1e-9 * ((e.abs() + shift.abs()) @ w.abs() + abs(b) + abs(logit(p0)) + 1)
    assert torch.all(z >= logit(p0) - bound)
    assert torch.all((z - logit(p0)).abs()[eps > 0] <= bound[eps > 0])


def test_norm_that_overflows_naively_is_handled():
    w = torch.full((4,), 1e200, dtype=torch.float64)
    assert not torch.isfinite(w.norm())  # the naive norm overflows
    eps = closed_form_eps(torch.tensor([[-1.0, 0.0, 0.0, 0.0]], dtype=torch.float64), w, 0.0, 0.9)
    assert eps.item() == pytest.approx(0.5)  # distance from w.e = -1e200 back to the boundary ~0
    w_tiny = torch.full((4,), 1e-200, dtype=torch.float64)
    assert w_tiny.norm() == 0  # the naive norm underflows
    eps = closed_form_eps(torch.zeros(1, 4, dtype=torch.float64), w_tiny, 0.0, 0.9)
    assert eps.item() == pytest.approx(logit(0.9) / 2e-200, rel=1e-12)


def test_unrepresentable_shift_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Reaching p0=0\.9 needs a shift too large"):
        closed_form_eps(torch.zeros(1, 1, dtype=torch.float64), torch.tensor([5e-324], dtype=torch.float64), 0.0, 0.9)
    with pytest.raises(ValueError, match=r"too large to represent in torch\.float32"):
        closed_form_eps(torch.zeros(1, 2), torch.tensor([1e-40, 0.0]), 0.0, 0.9)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@SETTINGS
@given(
    arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)), elements=finite_or_not),
    st.data(),
    finite_or_not,
    st.one_of(finite_or_not, st.integers(-5, 5), st.booleans(), st.none(), st.text(max_size=5)),
)
def test_any_input_gives_finite_eps_or_a_clear_error(e, data, b, p0):
    w = data.draw(arrays(np.float64, e.shape[1], elements=finite_or_not))
    try:
        eps = closed_form_eps(torch.tensor(e), torch.tensor(w), b, p0)
    except ValueError as err:
        assert str(err).startswith(CLEAR_ERRORS), err
        return
    assert torch.isfinite(eps).all() and (eps >= 0).all()
    assert np.isfinite(w).all() and np.isfinite(e).all() and math.isfinite(b) and 0 < float(p0) < 1


@pytest.mark.parametrize(
    ("resid", "w", "b", "message"),
    [
        (torch.zeros(2, 3), torch.tensor([1.0, float("nan"), 0.0]), 0.0, "finite and non-zero"),
        (torch.zeros(2, 3), torch.tensor([1.0, float("inf"), 0.0]), 0.0, "finite and non-zero"),
        (torch.zeros(2, 3), torch.zeros(3), 0.0, "all zeros"),
        (torch.zeros(2, 3), torch.ones(3), float("nan"), "bias must be finite"),
        (torch.zeros(2, 3), torch.ones(3), float("-inf"), "bias must be finite"),
        (torch.zeros(2, 3), torch.ones(3), torch.tensor([0.0, float("inf")]), "bias must be finite"),
        (torch.zeros(2, 3), torch.ones(3), torch.zeros(5), "bias must be a finite number"),
        (torch.zeros(2, 3), torch.ones(3), "0.1", "bias must be a finite number"),
        (torch.tensor([[float("inf"), 0.0, 0.0]]), torch.ones(3), 0.0, "residual holds NaN or inf"),
        (torch.tensor([[float("nan"), 0.0, 0.0]]), torch.ones(3), 0.0, "residual holds NaN or inf"),
        (torch.zeros(2, 4), torch.ones(3), 0.0, "last dimension must equal"),
        (torch.zeros(2, 3), torch.ones(1, 3), 0.0, "1-D vector"),
        (torch.zeros(2, 0), torch.ones(0), 0.0, "non-empty 1-D vector"),
        (torch.tensor(1.0), torch.ones(3), 0.0, "last dimension must equal"),
    ],
)
def test_bad_inputs_give_clear_errors(resid, w, b, message):
    with pytest.raises(ValueError, match=message):
        closed_form_eps(resid, w, b, 0.9)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**400), 10**400), st.booleans(),
                 st.none(), st.text(max_size=8), st.lists(st.floats(0.1, 0.9), max_size=2)))
def test_check_probability_accepts_only_open_unit_interval(p):
    try:
        out = check_probability("p0", p)
    except ValueError as err:
        assert str(err).startswith("p0 must be a probability strictly between 0 and 1, got ")
        assert len(str(err)) < 200
        return
    assert isinstance(out, float) and 0 < out < 1 and not isinstance(p, bool)


def test_check_probability_numpy_and_tensor_scalars():
    assert check_probability("g0", np.float32(0.25)) == 0.25
    assert check_probability("g0", torch.tensor(0.5)) == 0.5
    for bad in (torch.tensor([0.5, 0.5]), torch.tensor(True), np.float64("nan"), 1, 0):
        with pytest.raises(ValueError, match="g0 must be a probability"):
            check_probability("g0", bad)


@SETTINGS
@given(problems())
def test_float32_inputs_give_the_float64_answer_rounded(problem):
    e, w, b, p0 = problem
    e32, w32 = e.float(), w.float()
    eps32 = closed_form_eps(e32, w32, b, p0)
    assert eps32.dtype == torch.float32
    expected = closed_form_eps(e32.double(), w32.double(), b, p0).float()
    assert torch.equal(eps32, expected)
