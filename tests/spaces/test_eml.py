"""EML trees: evaluation semantics, the compiler, the space's variation and its emitted code."""

import math
import subprocess

import numpy as np
import pytest
import sympy as sp

from search.protocols import Context, Dataset, UserError
from spaces.eml.compile import from_eml, to_eml
from spaces.eml.space import EmlConfig, EmlSpace
from spaces.eml.tree import EML, ONE, depth, evaluate, is_valid, log_ext, real_part, to_string

X1 = np.array([[0.5], [2.0], [3.0]])
LN = (EML, ONE, EML, EML, ONE, 2, ONE)   # ln x = eml(1, eml(eml(1, x), 1)), 7 nodes (the paper's shortest)


def test_exp_and_ln_trees_match_numpy():
    assert np.allclose(evaluate((EML, 2, ONE), X1), np.exp(X1[:, 0]))
    assert np.allclose(evaluate(LN, X1), np.log(X1[:, 0]), rtol=1e-14)


def test_log_of_zero_is_minus_infinity_and_exp_of_it_is_zero():
    out = evaluate(LN, np.array([[0.0]]))
    assert out[0] == -np.inf
    exp_of_ln0 = evaluate((EML, *LN, ONE), np.array([[0.0]]))        # exp(ln 0) = 0, not NaN
    assert exp_of_ln0[0] == 0


def test_negative_zero_imaginary_part_takes_the_upper_branch():
    z = np.array([complex(-1.0, -0.0)])
    assert log_ext(z)[0] == pytest.approx(complex(0, math.pi))         # numpy would give -i*pi
    assert np.log(z)[0].imag == pytest.approx(-math.pi)


def test_overflow_gives_inf_and_inf_minus_inf_gives_nan():
    big = evaluate((EML, EML, 2, ONE, ONE), np.array([[800.0]]))        # exp(exp(800))
    assert big[0].real == np.inf
    nan = evaluate((EML, 2, EML, 2, ONE), np.array([[1000.0]]))         # exp(1000) - ln(exp(1000)) = inf - inf
    assert np.isnan(nan[0])
    values, reason = real_part(evaluate((EML, EML, 2, ONE, EML, EML, 2, ONE, ONE), np.array([[800.0]])))
    assert values is None and "non-finite" in reason


def test_real_part_rejects_complex_output():
    values, reason = real_part(evaluate(LN, np.array([[-2.0]])))       # ln(-2) = ln 2 + i*pi
    assert values is None and "complex" in reason


CALCULATOR = {
    "exp": sp.exp(sp.Symbol("x")), "ln": sp.log(sp.Symbol("x")), "sqrt": sp.sqrt(sp.Symbol("x")),
    "sin": sp.sin(sp.Symbol("x")), "cos": sp.cos(sp.Symbol("x")), "tan": sp.tan(sp.Symbol("x")),
    "asin": sp.asin(sp.Symbol("x")), "acos": sp.acos(sp.Symbol("x")), "atan": sp.atan(sp.Symbol("x")),
    "sinh": sp.sinh(sp.Symbol("x")), "cosh": sp.cosh(sp.Symbol("x")), "tanh": sp.tanh(sp.Symbol("x")),
    "asinh": sp.asinh(sp.Symbol("x")), "acosh": sp.acosh(sp.Symbol("x") + 1), "atanh": sp.atanh(sp.Symbol("x")),
    "add": sp.sympify("x + y"), "sub": sp.sympify("x - y"), "mul": sp.sympify("x * y"), "div": sp.sympify("x / y"),
    "pow": sp.sympify("x ** y"), "neg": sp.sympify("-x"), "inv": sp.sympify("1 / x"), "square": sp.sympify("x**2"),
    "e": sp.E, "pi": sp.pi, "i": sp.I, "rational": sp.Rational(3, 7) * sp.Symbol("x"),
}


@pytest.mark.parametrize("name", sorted(CALCULATOR))
def test_calculator_basis_compiles_to_eml_within_1e_10(name, record_property):
    expr = CALCULATOR[name]
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0.1, 0.9, 40), rng.uniform(0.2, 2.0, 40)])   # away from branch cuts
    tree = to_eml(expr, ["x", "y"])
    record_property("eml_nodes", len(tree))
    got = evaluate(tree, X)
    want = np.broadcast_to(sp.lambdify(sp.symbols("x y"), expr, "numpy")(X[:, 0], X[:, 1]), (40,))
    assert np.all(np.abs(got - want) <= 1e-10 * np.maximum(np.abs(want), 1.0)), name


def test_from_eml_simplifies_compiled_trees_back():
    x, y = sp.symbols("x y", positive=True)
    assert from_eml(LN, ["x"], [True]) == sp.log(x)
    assert sp.simplify(from_eml(to_eml("x*y", ["x", "y"]), ["x", "y"], [True, True]) - x * y) == 0


def test_to_eml_rejects_floats_and_unknown_symbols():
    with pytest.raises(ValueError, match="floating"):
        to_eml(sp.Float(0.5) * sp.Symbol("x"), ["x"])
    with pytest.raises(ValueError, match="unknown symbol"):
        to_eml("z + 1", ["x"])


def _space(max_depth=4, **kw):
    X = np.random.default_rng(0).uniform(0.5, 3.0, (30, 2))
    data = Dataset(X=X, y=X[:, 0] - np.log(X[:, 1]), variables=("a", "b"), target="y")
    return EmlSpace(EmlConfig(max_depth=max_depth, **kw), Context(seed=0, dataset=data))


def test_variation_keeps_trees_valid_and_within_max_depth():
    space = _space(max_depth=4)
    rng = np.random.default_rng(1)
    pop = space.initial(rng, 50)
    for _ in range(300):
        a, b = pop[int(rng.integers(50))], pop[int(rng.integers(50))]
        child = space.mutate(a, rng)
        c1, c2 = space.crossover(a, b, rng)
        for t in (child, c1, c2):
            assert is_valid(t, 2) and depth(t) <= 4
        pop[int(rng.integers(50))] = child
    assert len({space.key(g) for g in pop}) > 10


def test_same_seed_gives_same_initial_population():
    a = _space().initial(np.random.default_rng(5), 40)
    b = _space().initial(np.random.default_rng(5), 40)
    assert a == b


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="max_depth"):
        _space(max_depth=0)
    with pytest.raises(UserError, match="variables"):
        EmlSpace(EmlConfig(), Context())


def test_emitted_python_numpy_and_c_compute_the_tree(tmp_path):
    space = _space()
    tree = to_eml("a - log(b)", ["a", "b"])
    X = space.context.dataset.X
    want = evaluate(tree, X).real
    ns: dict = {}
    exec(space.emit(tree, "python"), ns)
    assert ns["f"](float(X[0, 0]), float(X[0, 1])) == pytest.approx(want[0], rel=1e-12)
    ns = {}
    exec(space.emit(tree, "numpy"), ns)
    assert np.allclose(ns["f"](X[:, 0], X[:, 1]), want, rtol=1e-12)
    (tmp_path / "f.c").write_text(space.emit(tree, "c"))
    subprocess.run(["gcc", "-O3", "-c", str(tmp_path / "f.c"), "-o", str(tmp_path / "f.o")], check=True)
    assert "log" in space.emit(tree, "latex")


def test_literal_emission_for_complex_closed_forms_runs_and_compiles(tmp_path):
    space = _space()
    tree = to_eml("sin(a)", ["a", "b"])                      # simplifies only to a complex log/exp nest
    X = space.context.dataset.X
    ns: dict = {}
    exec(space.emit(tree, "python"), ns)
    assert ns["f"](0.7, 1.0) == pytest.approx(math.sin(0.7), rel=1e-12)
    ns = {}
    exec(space.emit(tree, "numpy"), ns)
    assert np.allclose(ns["f"](X[:, 0], X[:, 1]), np.sin(X[:, 0]), rtol=1e-12)
    (tmp_path / "g.c").write_text(space.emit(tree, "c"))
    subprocess.run(["gcc", "-O3", "-c", str(tmp_path / "g.c"), "-o", str(tmp_path / "g.o")], check=True)
    assert to_string(tree, ["a", "b"]) in space.emit(tree, "eml")
