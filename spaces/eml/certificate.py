"""The EML space's certifier: the emitted closed form proved equal to the evolved tree by sympy (when it can), and
the artifact run at fresh points outside the training range against that form (mpmath), or against the tree's own
exact evaluation when the emitter fell back to a literal implementation. See spaces/expression_certificate.py."""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from runs.certificate import Check
from spaces.eml.compile import from_eml, raw_sympy, sympy_symbols
from spaces.eml.emit import closed_form, identifiers
from spaces.eml.tree import to_string
from spaces.expression_certificate import TOOLS, USES_COMPILER, expression_checks, training_ranges  # noqa: F401


def certify(space, genome, lang: str, source: str, artifact: Path) -> list[Check]:
    names = list(space.variables) if lang == "eml" else identifiers(space.variables)   # as the artifact spells them
    positive = [bool(p) for p in space.positive]
    data = space.context.dataset
    X = data.X if data is not None else None
    evolved = raw_sympy(genome, sympy_symbols(names, positive))
    if lang in ("sympy", "latex"):
        form = from_eml(genome, names, positive)          # these two languages always carry the simplified form
    else:
        form = closed_form(genome, space.variables, positive, X)   # what the code emitters used, or None
    real_form = form is not None and not form.has(sp.I, sp.nan, sp.zoo, sp.oo, -sp.oo)
    if real_form and lang != "eml":
        reference = {"kind": "sympy", "form": sp.srepr(form)}
    else:
        reference = {"kind": "eml_tree", "tree": to_string(genome, names)}
    return expression_checks(evolved, form, reference, lang, names, positive, training_ranges(X, len(names)),
                             space.context.seed, artifact)
