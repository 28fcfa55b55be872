"""tanh, sigmoid and erf (spaces/float32/activations.py): the emitted C and NumPy compute bit for bit what the simulation
measured, a fitted small-term core is under 1 ULP, special values are exact, and the Triton source is valid (and
bit-exact under Triton's CPU interpreter when triton is installed)."""

import ast
import ctypes
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

from search.protocols import Context
from spaces.float32.reduction import TARGETS, ulp_error
from spaces.float32.space import Float32Space, classic_forms

GCC = shutil.which("gcc")
SPECIALS = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45, -1e-45, 2.0 ** -12, -(2.0 ** -12), 9.5, -9.5, 9.01,
                     20.0, -20.0, 120.0, -120.0, -87.5, -103.9, -104.5, 17.4, 3.4028235e38, -3.4028235e38], np.float32)


def fitted(name, degree=5):
    sp = Float32Space(Float32Space.Config(target=name, max_ops=12), Context(seed=0))
    g = sp.canonical(classic_forms(sp.target, 12)[degree - 1])      # r^2 * (Horner of `degree` in r)
    return sp, g, sp.fit(g).constants


def fitted_erf(form=2):
    sp = Float32Space(Float32Space.Config(target="erf", max_ops=32), Context(seed=0))
    g = sp.canonical(classic_forms(sp.target, 32)[form])       # 20 ops: G deg 6 in a^2 - 81/128, D deg 14 in a - 2.5
    return sp, g, sp.fit(g).constants


def _same(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


def _inputs(target):
    return np.concatenate([target.sample(6000, np.random.default_rng(4)), target.hard_points(), SPECIALS])


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "erf"])
def test_emitted_c_and_numpy_match_the_simulation_bit_for_bit(tmp_path, name):
    sp, g, consts = fitted_erf() if name == "erf" else fitted(name)
    x = _inputs(sp.target)
    sim = sp.target.evaluate(g, consts, x)
    src = tmp_path / f"{name}.c"
    src.write_text(sp.emit(g, "c"))
    so = tmp_path / f"{name}.so"
    subprocess.run([GCC, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    fn = getattr(ctypes.CDLL(str(so)), f"evoforge_{name}_array")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], None
    out = np.empty_like(x)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    module = types.ModuleType("emitted")
    exec(sp.emit(g, "numpy"), module.__dict__)
    assert _same(out, sim)
    assert _same(getattr(module, f"evoforge_{name}")(x), sim)


@pytest.mark.parametrize("name,bound", [("tanh", 1.0), ("sigmoid", 1.0)])
def test_degree5_small_term_core_is_under_one_ulp_and_degree2_is_not(name, bound):
    target = TARGETS[name]
    x = np.concatenate([target.sample(1 << 16, np.random.default_rng(8)), target.hard_points()])
    ref = target.reference(x)
    sp, g, consts = fitted(name, 5)
    assert float(np.max(ulp_error(target.evaluate(g, consts, x), ref))) <= bound
    sp, g2, consts2 = fitted(name, 2)
    assert float(np.max(ulp_error(target.evaluate(g2, consts2, x), ref))) > 10.0


def test_special_values_are_exact():
    sp, g, c = fitted("tanh")
    y = sp.target.evaluate(g, c, np.array([np.inf, -np.inf, -0.0, 0.0, 1e-40, -3e-5, 20.0, -9.6, np.nan], np.float32))
    assert _same(y, np.array([1.0, -1.0, -0.0, 0.0, 1e-40, -3e-5, 1.0, -1.0, np.nan], np.float32))
    sp, g, c = fitted("sigmoid")
    y = sp.target.evaluate(g, c, np.array([np.inf, -np.inf, 0.0, -0.0, 17.4, -120.0, -1e30, np.nan], np.float32))
    assert _same(y, np.array([1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.0, np.nan], np.float32))
    # sigmoid(-100) = 3.72e-44 is subnormal in float32: one rounding, so within half an ULP of 2^-149
    y = sp.target.evaluate(g, c, np.array([-100.0], np.float32))
    assert float(ulp_error(y, sp.target.reference(np.array([-100.0], np.float32)))[0]) <= 0.5


def test_erf_two_outputs_fit_each_on_its_own_interval():
    """20 ops (G deg 6, D deg 14) reach 1 ULP; 17 ops (G deg 5, D deg 12) do not: the fit is the limit, not the
    harness (float32 only: no binary64, no division in the emitted C)."""
    target = TARGETS["erf"]
    x = np.concatenate([target.sample(1 << 16, np.random.default_rng(8)), target.hard_points()])
    ref = target.reference(x)
    sp, g, consts = fitted_erf(2)
    assert len(g) == 20 and float(np.max(ulp_error(target.evaluate(g, consts, x), ref))) <= 1.0
    y = target.evaluate(g, consts, np.array([np.inf, -np.inf, -0.0, 0.0, 3.92, -10.0, np.nan], np.float32))
    assert _same(y, np.array([1.0, -1.0, -0.0, 0.0, 1.0, -1.0, np.nan], np.float32))
    c = sp.emit(g, "c")
    body = c[c.index("evoforge_erf_inline"):]
    assert "double" not in body and " / " not in body
    sp, g, consts = fitted_erf(0)
    assert len(g) == 17 and float(np.max(ulp_error(target.evaluate(g, consts, x), ref))) > 1.0


def test_triton_source_is_valid_and_builds_binary64_constants_from_bits():
    sp, g, _ = fitted("sigmoid")
    src = sp.emit(g, "triton")
    tree = ast.parse(src)
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert names == ["_f64", "evoforge_sigmoid"]
    assert "_f64(0x3ff71547652b82fe)" in src            # log2(e) as binary64 bits, not an fp32 literal


def test_tanh_harness_is_float32_only_in_every_language():
    """No binary64 anywhere in tanh (8 lanes per AVX2 vector instead of 4); one division, IEEE (div_rn)."""
    sp, g, _ = fitted("tanh")
    c, tri = sp.emit(g, "c"), sp.emit(g, "triton")
    body = c[c.index("evoforge_tanh_reduce"):]
    assert "double" not in body and body.count(" / ") == 1
    ast.parse(tri)
    assert "float64" not in tri and "_f64" not in tri and tri.count("tl.div_rn(") == 1


def test_tanh_double_float_steps_hold_where_float32_alone_fails():
    """Near |x| = 0.2 (k = 1, E = 2P - 1 cancels) and near |x| = 8.14 (D ~ 2^23.5, where 2^k + 1 is no longer
    exact) the corrected division stays under 1 ULP; the plain float32 quotient E/(E + 2) does not."""
    target = TARGETS["tanh"]
    sp, g, consts = fitted("tanh")
    x = np.concatenate([np.linspace(0.17, 0.23, 20001), np.linspace(8.0, 8.3, 20001)]).astype(np.float32)
    ref = target.reference(x)
    assert float(np.max(ulp_error(target.evaluate(g, consts, x), ref))) <= 1.0
    e = np.expm1(2.0 * x.astype(np.float64)).astype(np.float32)
    naive = (e / (e + np.float32(2.0))).astype(np.float32)
    assert float(np.max(ulp_error(naive, ref))) > 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "erf"])
def test_triton_interpreter_matches_the_simulation(tmp_path, name, monkeypatch):
    pytest.importorskip("triton")
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    sp, g, consts = fitted_erf() if name == "erf" else fitted(name)
    path = tmp_path / f"tri_{name}.py"
    path.write_text(sp.emit(g, "triton") + KERNEL.format(name=name))
    code = (f"import numpy as np, torch, sys; sys.path.insert(0, {str(tmp_path)!r}); import tri_{name} as m\n"
            f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r})); y = torch.empty_like(x)\n"
            f"m.run(x, y); np.save({str(tmp_path / 'y.npy')!r}, y.numpy())\n")
    # a first block of ordinary arguments only: sigmoid's binary64 branch is skipped there, taken in the others
    x = np.concatenate([np.linspace(-79.0, 79.0, 1024, dtype=np.float32), _inputs(sp.target)])
    np.save(tmp_path / "x.npy", x)
    subprocess.run([os.sys.executable, "-c", code], check=True, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert torch is not None and _same(np.load(tmp_path / "y.npy"), sp.target.evaluate(g, consts, x))


def test_triton_sigmoid_takes_its_binary64_path_only_in_blocks_that_need_it(tmp_path):
    """Blocks of 16: ordinary arguments only (the float32 path alone), then arguments around +-80, huge ones, inf
    and NaN mixed in; the interpreter's bits equal the simulation's in both kinds of block."""
    pytest.importorskip("triton")
    pytest.importorskip("torch")
    sp, g, consts = fitted("sigmoid")
    src = sp.emit(g, "triton")
    assert "    if tl.max((~fast).to(tl.int32)) > 0:" in src
    (tmp_path / "tri_sigmoid.py").write_text(src + KERNEL.format(name="sigmoid").replace("1024", "16"))
    code = (f"import numpy as np, torch, sys; sys.path.insert(0, {str(tmp_path)!r}); import tri_sigmoid as m\n"
            f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r})); y = torch.empty_like(x)\n"
            f"m.run(x, y); np.save({str(tmp_path / 'y.npy')!r}, y.numpy())\n")
    x = np.concatenate([np.linspace(-79.0, 79.0, 16), [-0.0, 0.0, 1e-30, -3.5, 79.99, -79.99, 80.0, -80.0, 87.0,
                                                        -87.5, -104.0, 1e30, -1e30, np.inf, -np.inf, np.nan]])
    x = x.astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([os.sys.executable, "-c", code], check=True, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert _same(np.load(tmp_path / "y.npy"), sp.target.evaluate(g, consts, x))


KERNEL = """

@triton.jit
def _kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, evoforge_{name}(tl.load(x_ptr + offs, mask=mask, other=0.0)), mask=mask)


def run(x, y):
    _kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
"""


def test_sigmoid_common_path_is_float32_only_and_meets_the_rare_path_at_80():
    """The vector loop's path (|x| < 80) has no binary64 and one division; on both sides of -80 and 80 (the float32
    and the binary64 paths), near 0 and where sigmoid starts to round to 1, the error stays under 1 ULP."""
    sp, g, consts = fitted("sigmoid")
    c = sp.emit(g, "c")
    fast = c[c.index("void evoforge_sigmoid_reduce("):c.index("float evoforge_sigmoid_inline(")]   # both halves
    assert "double" not in fast and fast.count(" / ") == 1
    target = TARGETS["sigmoid"]
    x = np.concatenate([np.linspace(-80.02, -79.98, 4001), np.linspace(-0.4, 0.4, 4001),
                        np.linspace(17.2, 18.5, 4001), np.linspace(79.98, 80.02, 401)]).astype(np.float32)
    assert float(np.max(ulp_error(target.evaluate(g, consts, x), target.reference(x)))) <= 1.0
    state = target.reduce(x)[1]
    assert state["fast"].sum() == int((np.abs(x) < np.float32(80.0)).sum())
