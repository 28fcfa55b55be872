"""sin/cos harness (reduction.Sin): the float32 Cody-Waite fast path's double-float (rh, rl) and the emitted array
loop that vectorises the fast path and re-does only the huge lanes."""

import ctypes
import shutil
import subprocess
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from search.protocols import Context
from spaces.float32 import reduction as R
from spaces.float32.reduction import TARGETS, fma_f32
from spaces.float32.space import Float32Space, classic_forms

GCC = shutil.which("gcc")
getcontext().prec = 60
PIO2 = Fraction(Decimal("3.14159265358979323846264338327950288419716939937510582097494")) / 2


def _near_multiples():
    """The float32 values just around k pi/2 and (k + 1/2) pi/2 for every k of the fast path (|x| < 120)."""
    k = np.arange(0, 77)
    centres = np.concatenate([k * np.pi / 2, (k + 0.5) * np.pi / 2]).astype(np.float32)
    pts = [centres]
    lo, hi = centres.copy(), centres.copy()
    for _ in range(3):
        lo, hi = np.nextafter(lo, np.float32(0)), np.nextafter(hi, np.float32(200))
        pts += [lo, hi]
    x = np.concatenate(pts)
    return x[(x > 0) & (x < R.LARGE)]


def test_split_constants_sum_to_pi_over_2_and_k_c1_is_exact():
    c1, c2, c3 = (Fraction(float(c)) for c in (R.PIO2_C1, R.PIO2_C2, R.PIO2_C3))
    assert abs(float(PIO2 - c1 - c2 - c3)) < 1.3e-18
    for c in (c1, c2):                                  # 17 significant bits: k c exact for k < 128
        m = c.numerator * 2 ** 40 // c.denominator
        assert (m >> (m.bit_length() - 17)) << (m.bit_length() - 17) == m
    assert float(R.PIO2_C2) > 0                           # keeps a zero's sign in fma(-k, C2, r1)


def test_fast_reduction_is_accurate_near_multiples_of_pi_over_2():
    x = _near_multiples()
    rh, rl, n = R.Sin.reduce_fast(x)
    for xi, h, lo, k in zip(x, rh, rl, n):
        exact = Fraction(float(xi)) - int(k) * PIO2
        assert abs(exact) <= PIO2 / 2 * (1 + 1e-5)
        got = Fraction(float(h)) + Fraction(float(lo))
        assert abs(got - exact) <= abs(exact) * Fraction(1, 2 ** 29)    # 0.03 ULP; |r| >= 1.19e-8 here


def test_r1_minus_rh_is_exact():
    """r1 - rh is rounded by float32 subtraction: it must have no rounding error for the tail to be exact."""
    x = np.concatenate([_near_multiples(), TARGETS["sin"].sample(20000, np.random.default_rng(1))])
    ax = np.abs(x[np.abs(x) < R.LARGE])
    sh = fma_f32(ax, R.INV_PIO2_F, R.MAGIC32)
    kf = (sh - R.MAGIC32).astype(np.float32)
    r1 = fma_f32(-kf, R.PIO2_C1, ax)
    assert np.array_equal(r1.astype(np.float64), ax.astype(np.float64) - kf.astype(np.float64) * float(R.PIO2_C1))
    rh = fma_f32(-kf, R.PIO2_C2, r1)
    d = (r1 - rh).astype(np.float32)
    assert np.array_equal(d.astype(np.float64), r1.astype(np.float64) - rh.astype(np.float64))


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_array_loop_redoes_only_huge_lanes_and_matches_the_simulation(tmp_path, name):
    sp = Float32Space(Float32Space.Config(target=name, max_ops=24), Context(seed=0))
    g = classic_forms(sp.target, 24)[0]
    consts = sp.fit(g).constants
    src = tmp_path / f"{name}.c"
    src.write_text(sp.emit(g, "c"))
    so = tmp_path / f"{name}.so"
    subprocess.run([GCC, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    fn = getattr(ctypes.CDLL(str(so)), f"evoforge_{name}_array")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], None
    x = np.random.default_rng(4).uniform(-100, 100, 3000).astype(np.float32)
    x[[5, 700, 1500, 2999]] = [1e10, np.inf, np.nan, -3.4e38]          # huge lanes in blocks 0, 1, 2 and the tail
    x[600:620] = [-0.0, 0.0, 1e-40, -1e-40, 119.99999, 120.0, -120.0, 1.5707964, 2.0 ** -12, 1e-30] * 2
    out = np.empty_like(x)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    sim = sp.target.evaluate(sp.canonical(g), consts, x)
    assert np.array_equal(out.view(np.uint32)[~np.isnan(sim)], sim.view(np.uint32)[~np.isnan(sim)])
    assert np.array_equal(np.isnan(out), np.isnan(sim)) and np.isnan(out[[700, 1500]]).all()
    if name == "sin":                                   # odd: the sign of zero and of subnormals is kept
        assert np.array_equal(out[600:604].view(np.uint32), x[600:604].view(np.uint32))
    else:
        assert np.all(out[600:604] == 1.0)
