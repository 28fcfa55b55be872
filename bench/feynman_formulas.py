"""Ten equations of the Feynman symbolic-regression set (Udrescu & Tegmark 2020; SRBench 2021), written here from
the equations, with the sampling ranges of the original set. Each entry: id, target expression over its
variables, and (low, high) for uniform sampling of every variable."""

import sympy as sp

FORMULAS = [
    ("I.6.20a", "exp(-theta**2/2)/sqrt(2*pi)", ["theta"], (1, 3)),
    ("I.12.1", "mu*Nn", ["mu", "Nn"], (1, 5)),
    ("I.12.5", "q2*Ef", ["q2", "Ef"], (1, 5)),
    ("I.14.4", "k_spring*x**2/2", ["k_spring", "x"], (1, 5)),
    ("I.25.13", "q/C", ["q", "C"], (1, 5)),
    ("I.29.4", "omega/c", ["omega", "c"], (1, 10)),
    ("I.34.27", "h/(2*pi)*omega", ["h", "omega"], (1, 5)),
    ("I.39.1", "3*pr*V/2", ["pr", "V"], (1, 5)),
    ("II.3.24", "Pwr/(4*pi*r**2)", ["Pwr", "r"], (1, 5)),
    ("II.27.18", "epsilon*Ef**2", ["epsilon", "Ef"], (1, 5)),
    ("II.38.14", "Y/(2*(1 + sigma))", ["Y", "sigma"], (1, 5)),
    ("III.12.43", "n*h/(2*pi)", ["n", "h"], (1, 5)),
]


def parsed():
    """(id, sympy target, positive symbols, range) for each formula."""
    out = []
    for name, text, variables, bounds in FORMULAS:
        symbols = [sp.Symbol(v, positive=True) for v in variables]
        out.append((name, sp.sympify(text, locals={v: s for v, s in zip(variables, symbols)}), symbols, bounds))
    return out
