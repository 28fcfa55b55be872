"""The float32 space: variation keeps programs valid, the fitter reaches 1 ULP on classic forms, and the emitted
C and NumPy compute bit for bit what the simulation measured."""

import ctypes
import shutil
import subprocess
import types

import numpy as np
import pytest

from search.protocols import Context, UserError
from spaces.float32.program import ARITY, CONST
from spaces.float32.reduction import TARGETS, ulp_error
from spaces.float32.space import Float32Space, classic_forms

GCC = shutil.which("gcc")


def space(target="exp", **kw):
    return Float32Space(Float32Space.Config(target=target, **kw), Context(seed=0))


def valid(prog, sp):
    for i, (op, args) in enumerate(prog):
        assert op in ARITY and len(args) == ARITY[op]
        assert all(a == CONST or 0 <= a < sp.n_in + i for a in args)
        assert any(a != CONST for a in args)
    assert sp.target.n_outputs <= len(prog) <= sp.config.max_ops


@pytest.mark.parametrize("target", ["exp", "sin"])
def test_variation_keeps_programs_valid(target):
    sp = space(target, max_ops=10)
    rng = np.random.default_rng(1)
    pop = [sp.random(rng) for _ in range(30)]
    for _ in range(300):
        a, b = pop[rng.integers(len(pop))], pop[rng.integers(len(pop))]
        child = sp.mutate(a, rng)
        valid(child, sp)
        c1, c2 = sp.crossover(a, b, rng)
        valid(c1, sp)
        valid(c2, sp)
        pop[rng.integers(len(pop))] = child


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="space.target"):
        space("tan")
    with pytest.raises(UserError, match="space.ops"):
        space(ops=("pow",))
    with pytest.raises(UserError, match="max_ops"):
        space("sin", max_ops=1)


def _horner_exp(degree):
    return next(f for f in classic_forms(TARGETS["exp"], 12) if len(f) == degree)


def test_fitter_brings_degree6_horner_exp_under_one_ulp_and_degree4_not():
    sp = space("exp")
    x = TARGETS["exp"].sample(100000, np.random.default_rng(7))
    ref = TARGETS["exp"].reference(x)
    errs = {}
    for d in (4, 6):
        g = _horner_exp(d)
        errs[d] = ulp_error(TARGETS["exp"].evaluate(g, sp.fit(g).constants, x), ref).max()
    assert errs[6] <= 1.0 < errs[4]


def _compile(source, tmp_path, name):
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    so = tmp_path / f"{name}.so"
    subprocess.run([GCC, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(so), str(c)], check=True)
    fn = getattr(ctypes.CDLL(str(so)), f"evoforge_{name}")
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return fn


def _same(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


SPECIALS = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, 3.4028235e38, -3.4028235e38,
                     1.1754944e-38, 100.0, -100.0, 88.72284, -103.97208], np.float32)


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("target,form", [("exp", 5), ("exp2", 6), ("log", 7), ("log2", 6), ("sin", 0), ("cos", 0)])
def test_emitted_c_and_numpy_match_the_simulation_bit_for_bit(tmp_path, target, form):
    sp = space(target, max_ops=24)
    g = classic_forms(sp.target, 24)[form]
    fit = sp.fit(g)
    x = np.concatenate([sp.target.sample(4000, np.random.default_rng(3)), sp.target.hard_points()[:2000], SPECIALS])
    sim = sp.target.evaluate(sp.canonical(g), fit.constants, x)
    fn = _compile(sp.emit(g, "c"), tmp_path, target)
    c_out = np.array([fn(float(v)) for v in x], np.float32)
    module = types.ModuleType("emitted")
    exec(sp.emit(g, "numpy"), module.__dict__)
    np_out = getattr(module, f"evoforge_{target}")(x)
    assert _same(c_out, sim)
    assert _same(np_out, sim)


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("target,form", [("log", 7), ("log2", 6), ("sin", 0), ("cos", 0)])
def test_array_loop_fast_path_and_redone_lanes_match_the_simulation(tmp_path, target, form):
    """log/log2/sin/cos arrays run a fast path without the rare cases over blocks of 512 and redo the rare lanes
    (log: not a positive normal; sin/cos: |x| >= 120, inf, NaN) with the scalar function: same bits as the
    simulation, wherever the rare lanes fall (first, middle, last block, the tail)."""
    sp = space(target, max_ops=24)
    g = classic_forms(sp.target, 24)[form]
    x = np.concatenate([sp.target.sample(3000, np.random.default_rng(8)), SPECIALS, SPECIALS[::-1]])
    x[[0, 511, 512, 1800, x.size - 1]] = [-0.0, np.inf, 1e-40, np.nan, 3e38]
    sim = sp.target.evaluate(sp.canonical(g), sp.fit(g).constants, x)
    _compile(sp.emit(g, "c"), tmp_path, target)
    fn = getattr(ctypes.CDLL(str(tmp_path / f"{target}.so")), f"evoforge_{target}_array")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], None
    out = np.empty_like(x)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    assert _same(out, sim)


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("target,form", [("sin", 0), ("cos", 0), ("sigmoid", 4), ("tanh", 0)])
def test_two_pass_array_loop_equals_the_scalar_function_at_any_length_and_alignment(tmp_path, target, form):
    """sin, cos, sigmoid and tanh arrays run their fast path in two passes over each block (stage buffers between):
    every lane equals the scalar `evoforge_NAME`, for lengths that end mid-vector and mid-block and for input and
    output pointers off the vector alignment, with rare lanes (huge, inf, NaN) among them."""
    sp = space(target, max_ops=24)
    g = classic_forms(sp.target, 24)[form]
    scalar = _compile(sp.emit(g, "c"), tmp_path, target)
    fn = getattr(ctypes.CDLL(str(tmp_path / f"{target}.so")), f"evoforge_{target}_array")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], None
    x = np.concatenate([sp.target.sample(1100, np.random.default_rng(9)), SPECIALS]).astype(np.float32)
    x[[3, 520, 1030]] = [1e10, np.inf, -150.0]
    want = np.array([scalar(float(v)) for v in x], np.float32)
    buf_in, buf_out = np.zeros(x.size + 8, np.float32), np.zeros(x.size + 8, np.float32)
    for n, off_in, off_out in [(x.size, 0, 0), (517, 1, 3), (1029, 3, 0), (7, 2, 5), (1, 0, 1)]:
        buf_in[off_in:off_in + n] = x[:n]
        fn(buf_in[off_in:].ctypes.data, buf_out[off_out:].ctypes.data, n)
        assert _same(buf_out[off_out:off_out + n], want[:n]), (n, off_in, off_out)


@pytest.mark.skipif(GCC is None, reason="needs gcc")
def test_emitted_c_compiles_portably_without_libm_calls(tmp_path):
    """Plain `gcc -O3 -c` (no FMA unit assumed): the software fma is used; the object calls no libm function."""
    sp = space("log", max_ops=14)
    src = tmp_path / "log.c"
    src.write_text(sp.emit(classic_forms(sp.target, 14)[5], "c"))
    obj = tmp_path / "log.o"
    subprocess.run([GCC, "-O3", "-std=c99", "-Wall", "-Werror", "-c", str(src), "-o", str(obj)], check=True)
    undefined = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout
    assert undefined.strip() == ""


@pytest.mark.parametrize("target,x,expected", [
    ("exp", [np.inf, -np.inf, 89.0, -104.0, 0.0], [np.inf, 0.0, np.inf, 0.0, 1.0]),
    ("exp2", [np.inf, -np.inf, 128.0, -150.0, 0.0], [np.inf, 0.0, np.inf, 0.0, 1.0]),
    ("log", [0.0, -0.0, np.inf, 1.0], [-np.inf, -np.inf, np.inf, 0.0]),
    ("log2", [0.0, np.inf, 1.0, 8.0, 2.0 ** -149], [-np.inf, np.inf, 0.0, 3.0, -149.0]),
])
def test_special_cases(target, x, expected):
    sp = space(target, max_ops=14)
    g = classic_forms(sp.target, 14)[5]
    y = sp.target.evaluate(sp.canonical(g), sp.fit(g).constants, np.array(x, np.float32))
    assert _same(y, np.array(expected, np.float32))
    nan_in = {"exp": [np.nan], "exp2": [np.nan], "log": [-1.0, np.nan, -np.inf], "log2": [-1e-30, np.nan]}[target]
    assert np.all(np.isnan(sp.target.evaluate(sp.canonical(g), sp.fit(g).constants, np.array(nan_in, np.float32))))


def test_sin_keeps_signed_zero_and_nan_for_inf():
    sp = space("sin", max_ops=24)
    g = classic_forms(sp.target, 24)[0]
    y = sp.target.evaluate(sp.canonical(g), sp.fit(g).constants, np.array([-0.0, 0.0, np.inf, -np.inf, 1e-40],
                                                                            np.float32))
    assert _same(y[:2], np.array([-0.0, 0.0], np.float32)) and np.all(np.isnan(y[2:4])) and y[4] == np.float32(1e-40)


def test_triton_emitter_gives_valid_python_for_log_and_trig():
    import ast

    sp = space("log", max_ops=14)
    src = sp.emit(classic_forms(sp.target, 14)[5], "triton")
    tree = ast.parse(src)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    assert fn.name == "evoforge_log" and "tl.fma(" in src and "@triton.jit" in src
    src = space("sin", max_ops=24).emit(classic_forms(TARGETS["sin"], 24)[0], "triton")
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef))
    assert fn.name == "evoforge_sin" and src.count("tl.where(idx == 0, ") == 3     # three 2/pi table lookups
    assert "    if tl.max(large.to(tl.int32)) > 0:" in src   # ... only in a block that holds a huge argument


def _triton_trig_bits(name, device, tmp_path):
    """The emitted Triton function of the published `name` program on special inputs, and the simulation's bits.
    On "cpu" the kernel runs in a subprocess under Triton's interpreter: TRITON_INTERPRET must be set before triton
    is imported, or the standard library's jit functions (tl.max) cannot be called from the interpreted code."""
    import ast
    import json
    import os
    import subprocess
    from pathlib import Path

    from spaces.float32 import emit as emitters

    info = json.loads((Path(__file__).parents[2] / "bench" / "results" / f"{name}.json").read_text())
    prog, consts = ast.literal_eval(info["genome"]), [float.fromhex(c) for c in info["constants"]]
    src = emitters.emit(prog, consts, TARGETS[name], "triton", "test") + (
        "\n\n@triton.jit\ndef _kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):\n"
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)\n"
        f"    tl.store(y_ptr + offs, evoforge_{name}(tl.load(x_ptr + offs, mask=offs < n, other=0.0)), mask=offs < n)\n"
        "\n\ndef run(x, y):\n    _kernel[(4,)](x, y, 33, BLOCK=16)\n")
    module = f"k_{name}_{device}"
    (tmp_path / f"{module}.py").write_text(src)
    # blocks of 16: the first holds only |x| < 120 (the Payne-Hanek branch is skipped), the others mix both
    ordinary = np.linspace(-119.5, 119.5, 16, dtype=np.float32)
    x = np.concatenate([ordinary, np.array([-0.0, 0.0, 1e-40, -1e-40, 1e-20, -0.7, 1.5, -3.0, 100.0, -119.9, 120.0,
                                            -1e4, 3.4e38, -1e30, np.inf, -np.inf, np.nan], np.float32)])
    padded = np.zeros(64, np.float32)
    padded[:x.size] = x
    np.save(tmp_path / "x.npy", padded)
    code = (f"import numpy as np, torch, sys; sys.path.insert(0, {str(tmp_path)!r}); import {module} as m\n"
            f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r})).to({device!r}); y = torch.empty_like(x)\n"
            f"m.run(x, y); np.save({str(tmp_path / 'y.npy')!r}, y.cpu().numpy())\n")
    env = {**os.environ, **({"TRITON_INTERPRET": "1"} if device == "cpu" else {})}
    subprocess.run([os.sys.executable, "-c", code], check=True, env=env)
    return np.load(tmp_path / "y.npy")[:x.size], TARGETS[name].evaluate(prog, consts, x)


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_triton_trig_matches_the_simulation_bit_for_bit_in_the_interpreter(name, tmp_path):
    """Signed zeros, both reductions (fast and Payne-Hanek), inf and NaN: the emitted Triton code, run by Triton's
    CPU interpreter, returns the simulation's bits."""
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    got, want = _triton_trig_bits(name, "cpu", tmp_path)
    assert _same(got, want), (got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_triton_trig_matches_the_simulation_bit_for_bit_on_the_gpu(name, tmp_path):
    """The same on a CUDA device: sin(-0.0) once came back +0.0 there (a float negation select), never on the CPU."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    got, want = _triton_trig_bits(name, "cuda", tmp_path)
    assert _same(got, want), (got, want)
