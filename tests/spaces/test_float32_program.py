"""float32 program semantics: exact fma, per-op rounding, dead code and canonical forms."""

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spaces.float32.program import CONST, canonical, evaluate_f32, evaluate_f64, fma_f32, op_count

f32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _correctly_rounded(exact: Fraction) -> np.float32:
    """RN-even of an exact rational to float32, by comparing with both float32 neighbours."""
    guess = np.float32(float(exact))
    best = None
    for cand in (np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))):
        if not np.isfinite(cand):
            continue
        d = abs(Fraction(float(cand)) - exact)
        key = (d, int(np.array([cand]).view(np.uint32)[0]) & 1)     # ties: the even significand
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1]


def test_fma_avoids_double_rounding():
    # 4097 * 4097 = 2^24 + 2^13 + 1 is a float32 tie; + 2^-30 must round up. Rounding through binary64 first
    # drops the 2^-30 and then breaks the tie to even (2^24 + 2^13): the classic double-rounding error.
    a, c = np.float32(4097.0), np.float32(2.0 ** -30)
    naive = np.float32(np.float64(a) * np.float64(a) + np.float64(c))
    assert naive == np.float32(16785408.0)
    assert fma_f32(a, a, c) == np.float32(16785410.0)


@settings(max_examples=300, deadline=None)
@given(f32s, f32s, f32s)
def test_fma_is_correctly_rounded(a, b, c):
    a, b, c = np.float32(a), np.float32(b), np.float32(c)
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if abs(exact) >= Fraction(float(np.finfo(np.float32).max)):
        return
    got = fma_f32(a, b, c)
    want = _correctly_rounded(exact)
    assert got == want or (got == 0 and want == 0)


def test_ops_round_once_per_operation():
    r = np.array([0.1, 1.5, -3.25], np.float32)
    prog = (("mul", (0, CONST)), ("add", (1, 0)), ("div", (2, CONST)), ("sub", (3, 0)))
    consts = [1.0 / 3.0, 7.0]
    (out,) = evaluate_f32(prog, consts, r)
    c0, c1 = np.float32(1.0 / 3.0), np.float32(7.0)
    expected = ((r * c0 + r) / c1) - r           # numpy float32 arithmetic rounds each op
    assert out.dtype == np.float32 and np.array_equal(out, expected)
    (out64,) = evaluate_f64(prog, consts, r.astype(np.float64))
    assert np.allclose(out64, ((r * (1 / 3) + r) / 7.0) - r)


def test_dead_code_is_removed_and_keys_agree():
    live = (("fma", (0, CONST, CONST)), ("fma", (1, 0, CONST)))
    with_dead = (("fma", (0, CONST, CONST)), ("mul", (0, 0)), ("fma", (1, 0, CONST)))
    assert canonical(with_dead, 1) == live
    assert op_count(with_dead, 1) == 2
    # two outputs and two inputs (sin/cos): nothing is dead
    two = (("mul", (0, 0)), ("add", (2, 1)), ("mul", (2, CONST)))
    assert op_count(two, 2, n_inputs=2) == 3
