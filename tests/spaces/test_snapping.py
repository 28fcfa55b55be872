import numpy as np
import pytest
import sympy as sp

from search.protocols import Context, Dataset
from spaces.optree import OpTreeConfig, OpTreeSpace
from spaces.snapping import candidates, exact_formula, readable, snap_expression

x, z = sp.symbols("x z", positive=True)
X = np.random.default_rng(0).uniform(1, 5, (200, 2))


def data_for(truth):
    return np.asarray(sp.lambdify([x, z], truth)(X[:, 0], X[:, 1]), dtype=float) * np.ones(len(X))


@pytest.mark.parametrize("fitted,truth", [
    (3.14159265358979 * x, sp.pi * x),
    (0.500000000000031 * x * z, x * z / 2),
    (0.599999999999987 * x + z, sp.Rational(3, 5) * x + z),
    (0.0795774715459477 * x / z ** 2.0, x / (4 * sp.pi * z ** 2)),
    (1.0 * x * z, x * z),
    (sp.log(x ** (1.0 / x) + 1.03411553555107e-13), sp.log(x) / x),
])
def test_fitted_constants_snap_to_the_exact_law(fitted, truth):
    got = exact_formula(fitted, [x, z], X, data_for(truth))
    assert not got.atoms(sp.Float)
    assert sp.simplify(got - truth) == 0
    assert str(got) == str(sp.simplify(truth))


def test_candidates_are_simplest_first():
    values = [c.expr for c in candidates(0.159154943092)]
    assert values[:2] == [0, 1 / (2 * sp.pi)]
    assert [c.expr for c in candidates(0.6)][:2] == [0, sp.Rational(3, 5)]


def test_a_constant_the_data_pins_elsewhere_stays_a_float():
    # 0.16 is 0.53% from 1/(2*pi): on noise-free data the fit would get worse, so it must not snap
    got = snap_expression(0.16 * x * z, [x, z], X, data_for(sp.Rational(4, 25) * x * z))
    assert got == sp.Rational(4, 25) * x * z
    got = snap_expression(0.123456789 * x, [x, z], X, data_for(sp.Float(0.123456789) * x))
    assert got.atoms(sp.Float) == {sp.Float(0.123456789)}


def test_with_noise_a_constant_within_the_noise_snaps():
    y = data_for(x * z / (2 * sp.pi))
    noisy = y + 0.01 * np.std(y) * np.random.default_rng(1).normal(size=len(y))
    fitted = float(np.linalg.lstsq((X[:, 0] * X[:, 1])[:, None], noisy, rcond=None)[0][0])
    assert abs(fitted - 1 / (2 * np.pi)) > 1e-6      # the noise moved the fitted constant
    assert snap_expression(fitted * x * z, [x, z], X, noisy) == x * z / (2 * sp.pi)


def test_with_noise_a_complex_constant_snaps_within_its_standard_error_not_only_its_cost_window():
    # 1/(4*pi) costs 2.4: its noise-free window is 6.3e-4 relative; 1% noise on 200 points leaves a standard error
    # of about 7e-4 on an overall factor, so a fit 8e-4 off (Feynman II.4.23 came out 6.7e-4 off) must still snap
    truth = x / (4 * sp.pi * z)
    y = data_for(truth)
    noisy = y + 0.01 * np.sqrt(np.mean(y ** 2)) * np.random.default_rng(2).normal(size=len(y))
    fitted = float(1 / (4 * np.pi)) * (1 + 8e-4)
    assert snap_expression(fitted * x / z, [x, z], X, noisy) == truth
    # the same 8e-4 on noise-free data is a real difference: the constant stays a float
    assert snap_expression(fitted * x / z, [x, z], X, y).atoms(sp.Float)


def test_simplification_keeps_exact_numbers_beside_unsnapped_floats():
    assert readable(sp.Rational(3, 5) * x + sp.Float(0.2500000001) * z + x) == sp.Rational(8, 5) * x + \
        sp.Float(0.2500000001) * z


def space_for(truth, names=("h", "omega")):
    h, omega = sp.symbols(names, positive=True)
    y = np.asarray(sp.lambdify([h, omega], truth(h, omega))(X[:, 0], X[:, 1]), dtype=float)
    return OpTreeSpace(OpTreeConfig(), Context(dataset=Dataset(X=X, y=y, variables=names, target="E")))


def test_every_optree_emitter_prints_the_exact_constant():
    space = space_for(lambda h, omega: h * omega / (2 * sp.pi))
    genome = ("mul", 0.159154943092, "mul", "h", "omega")
    assert space.describe(genome) == "h*omega/(2*pi)"
    code = {lang: space.emit(genome, lang) for lang in space.emit_languages}
    assert "return (1/2)*h*omega/math.pi" in code["python"]
    assert "return (1/2)*h*omega/numpy.pi" in code["numpy"]
    assert "return (1.0/2.0)*h*omega/M_PI;" in code["c"]
    assert "sp.sympify('h*omega/(2*pi)'" in code["sympy"]
    assert code["latex"] == "\\frac{h \\omega}{2 \\pi}\n"
    assert not any("0.159" in text for text in code.values())
    ns: dict = {}
    exec(code["python"], ns)
    assert ns["f"](2.0, 3.0) == pytest.approx(3.0 / np.pi, rel=1e-15)


def test_emitters_drop_unit_factors_and_float_exponents():
    space = space_for(lambda h, omega: h ** 2 * omega)
    genome = ("mul", "pow", "h", 2.0000000000001, "mul", 1.0, "omega")
    code = {lang: space.emit(genome, lang) for lang in space.emit_languages}
    assert space.describe(genome) == "h**2*omega"
    assert "return h**2*omega\n" in code["python"] and "return h**2*omega\n" in code["numpy"]
    assert "return pow(h, 2)*omega;" in code["c"]
    assert code["latex"] == "h^{2} \\omega\n"
    assert not any("1.0*" in text or "2.0" in text for text in code.values())


def test_a_genome_that_fails_on_the_data_is_described_without_snapping():
    space = space_for(lambda h, omega: h * omega)
    assert space.describe(("log", "sub", 0.5, "h")) == "log(0.5 - h)"


def test_a_formula_that_does_not_explain_the_data_keeps_its_floats():
    got = snap_expression(0.5000001 * x + 2.0000001, [x, z], X, data_for(x ** 2))
    assert got.atoms(sp.Float) == {sp.Float(0.5000001), sp.Float(2.0000001)}


def test_a_subterm_that_underflows_to_zero_on_the_data_is_dropped():
    """Seed 6 of the optree recovery bench: theta**(theta**-154534.4 + 2) fits exactly as theta**2 on theta in
    [1.01, 3] (the inner power underflows), so the formula is the Gaussian, and snapping must say so."""
    import numpy as np
    import sympy as sp

    from spaces.snapping import drop_vanishing, exact_formula

    theta = sp.Symbol("theta", positive=True)
    X = np.linspace(1.01, 3.0, 200)[:, None]
    truth = sp.exp(-theta ** 2 / 2) / sp.sqrt(2 * sp.pi)
    y = np.exp(-X[:, 0] ** 2 / 2) / np.sqrt(2 * np.pi)
    bloated = sp.Float(0.398942280401) * sp.exp(-theta ** (theta ** sp.Float(-154534.4) + 2) / 2)
    assert sp.simplify(exact_formula(bloated, [theta], X, y) - truth) == 0
    # a small but real term is kept: x**-3 is not zero on the data
    kept = theta ** 2 + sp.Float(1e-3) * theta ** sp.Float(-3.0)
    assert drop_vanishing(kept, [theta], X, y) == kept
