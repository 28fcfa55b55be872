"""The committed float32 functions (bench/results/NAME.c): compiled with gcc, <= 1 ULP on a large random sample
and exact on the special cases. (All 2^32 inputs are checked by bench/ulp_exhaustive.py, outside the suite.)"""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from spaces.float32.reduction import TARGETS, ulp_error

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
GCC = shutil.which("gcc")


def _array_fn(name, tmp_path):
    so = tmp_path / f"{name}.so"
    subprocess.run([GCC, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(so), str(RESULTS / f"{name}.c")],
                   check=True)
    fn = getattr(ctypes.CDLL(str(so)), f"evoforge_{name}_array")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], None

    def call(x):
        x = np.ascontiguousarray(x, np.float32)
        out = np.empty_like(x)
        fn(x.ctypes.data, out.ctypes.data, x.size)
        return out
    return call


SPECIAL = {
    "exp": ([np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.72284, -103.972076, -103.97208, -87.33654, 1e-30],
            [np.inf, 0.0, 1.0, 1.0, np.exp(np.float64(np.float32(88.72283))), np.inf, np.exp(np.float64(np.float32(-103.972076))),
             np.exp(np.float64(np.float32(-103.97208))),
             np.exp(np.float64(np.float32(-87.33654))), 1.0]),
    "exp2": ([np.inf, -np.inf, 0.0, 127.0, 128.0, -149.0, -150.0, -151.0, -126.0, 3.0], [np.inf, 0.0, 1.0, 2.0 ** 127,
             np.inf, 2.0 ** -149, 2.0 ** -150, 2.0 ** -151, 2.0 ** -126, 8.0]),
    "log": ([0.0, -0.0, np.inf, 1.0, 1e-45, 3.4028235e38], [-np.inf, -np.inf, np.inf, 0.0, np.log(np.float64(np.float32(1e-45))),
            np.log(3.4028235e38)]),
    "log2": ([0.0, np.inf, 1.0, 2.0 ** -149, 2.0 ** 100, 0.5], [-np.inf, np.inf, 0.0, -149.0, 100.0, -1.0]),
    "sin": ([0.0, -0.0, 1e-40, -1e-40], [0.0, -0.0, 1e-40, -1e-40]),
    "cos": ([0.0, -0.0, 1e-40], [1.0, 1.0, 1.0]),
    "tanh": ([0.0, -0.0, np.inf, -np.inf, 1e-40, 9.6, -20.0], [0.0, -0.0, 1.0, -1.0, 1e-40, 1.0, -1.0]),
    "sigmoid": ([0.0, np.inf, -np.inf, 20.0, -120.0], [0.5, 1.0, 0.0, 1.0 / (1.0 + np.exp(-20.0)), 0.0]),
    "erf": ([0.0, -0.0, np.inf, -np.inf, 3.92, -5.0, 1e-40], [0.0, -0.0, 1.0, -1.0, 1.0, -1.0, 1.1283791670955126e-40]),
}


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("name", ["exp", "exp2", "log", "log2", "sin", "cos", "tanh", "sigmoid", "erf"])
def test_committed_function_is_within_one_ulp(name, tmp_path):
    f = _array_fn(name, tmp_path)
    target = TARGETS[name]
    x = np.concatenate([target.sample(1 << 20, np.random.default_rng(31)), target.hard_points()])
    assert float(np.max(ulp_error(f(x), target.reference(x)))) <= 1.0
    xs, want = SPECIAL[name]
    got = f(np.array(xs, np.float32))
    want = np.array(want, np.float64)
    assert np.all(ulp_error(got, want) <= 1.0)
    exact = np.isinf(want) | (want == 0)           # the mathematical value is 0 or infinite: no rounding excuse
    assert np.array_equal(got[exact], want[exact].astype(np.float32))
    assert np.array_equal(np.signbit(got[exact]), np.signbit(want[exact]))
    bad = np.array({"log": [-1.0, np.nan, -np.inf], "log2": [-1e-30, np.nan]}.get(name, [np.nan, np.nan]), np.float32)
    if name in ("sin", "cos"):
        bad = np.array([np.nan, np.inf, -np.inf], np.float32)
    assert np.all(np.isnan(f(bad)))


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("name", ["exp", "sin"])
def test_an_avx512_build_of_the_array_loop_uses_16_lane_vectors(name):
    """gcc's default tuning keeps 8-lane vectors on AVX-512 hosts; the emitted C asks for 512-bit ones there (same
    operations per lane, so the same bits: bench/README.md), and an AVX2 build is unchanged. Assembly only: this
    host need not run AVX-512."""
    def vector_registers(march):
        asm = subprocess.run([GCC, "-O3", f"-march={march}", "-S", "-o", "-", str(RESULTS / f"{name}.c")],
                             capture_output=True, text=True, check=True).stdout
        body = asm[asm.index(f"evoforge_{name}_array:"):]
        return body.count("%zmm"), body.count("%ymm")
    wide, avx2 = vector_registers("x86-64-v4"), vector_registers("x86-64-v3")
    assert wide[0] > 20 and avx2 == (0, avx2[1]) and avx2[1] > 20


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("name, edges", [("exp", (-104.5, -86.0, 87.0, 89.5)), ("exp2", (-152.0, -125.0, 126.0, 130.0))])
def test_exp_arrays_fast_path_gives_the_scalar_functions_bits(name, edges, tmp_path):
    """The exp/exp2 arrays compute one product p 2^k inside a window of k and redo the lanes outside it with the
    scalar (two-step) path; blocks that mix both, the window's edges, subnormal and overflowing results, inf and
    NaN must all come out as the scalar function's bits."""
    array = _array_fn(name, tmp_path)
    scalar = getattr(ctypes.CDLL(str(tmp_path / f"{name}.so")), f"evoforge_{name}")
    scalar.argtypes, scalar.restype = [ctypes.c_float], ctypes.c_float
    rng = np.random.default_rng(5)
    lo0, lo1, hi0, hi1 = edges
    x = np.concatenate([rng.uniform(lo0, lo1, 6000), rng.uniform(hi0, hi1, 6000), rng.uniform(lo1, hi0, 20000),
                        [np.inf, -np.inf, np.nan, 0.0, -0.0]]).astype(np.float32)
    x = x[rng.permutation(x.size)]
    want = np.array([scalar(float(v)) for v in x], np.float32)
    got = array(x)
    assert np.array_equal(got.view(np.uint32)[~np.isnan(want)], want.view(np.uint32)[~np.isnan(want)])
    assert np.array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("name", ["exp", "exp2", "log", "log2", "sin", "cos", "tanh", "sigmoid", "erf"])
def test_a_call_too_large_for_the_cache_gives_the_scalar_functions_bits(name, tmp_path):
    """Calls above 2^16 elements take the memory-bound path (one pass per block, the input prefetched 4 KiB
    ahead): every lane, the rare ones in the first and the last blocks and the tail after the last full block
    included, equals the scalar function."""
    array = _array_fn(name, tmp_path)
    scalar = getattr(ctypes.CDLL(str(tmp_path / f"{name}.so")), f"evoforge_{name}")
    scalar.argtypes, scalar.restype = [ctypes.c_float], ctypes.c_float
    target = TARGETS[name]
    x = target.sample(70001, np.random.default_rng(17)).astype(np.float32)
    rare = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, 3e38, -3e38, 150.0, -150.0], np.float32)
    x[:rare.size], x[-rare.size:], x[69800:69800 + rare.size] = rare, rare, rare
    got, want = array(x), np.array([scalar(float(v)) for v in x], np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    keep = ~np.isnan(want)
    assert np.array_equal(got.view(np.uint32)[keep], want.view(np.uint32)[keep])
