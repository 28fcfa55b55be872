"""The eml_constants space's certifier: its closed form (constants fitted, snapped where exact) is what the code
emitters print, so the expression checks of the operator trees apply: a sympy proof when sympy finds one, and the
artifact run at fresh points outside the training range against that form in 30-digit mpmath. The `eml` nest
itself carries the constants as decimal leaves; it is certified by its hash only."""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from runs.certificate import Check
from spaces.expression_certificate import expression_checks, training_ranges


def certify(space, genome, lang: str, source: str, artifact: Path) -> list[Check]:
    if lang == "eml":
        return []
    names = list(space.variables)
    form = space.to_sympy(genome)
    data = space.context.dataset
    ranges = training_ranges(data.X if data is not None else None, len(names))
    positive = [bool(lo > 0) for lo, _ in ranges] if data is not None else [False] * len(names)
    return expression_checks(form, form, {"kind": "sympy", "form": sp.srepr(form)}, lang, names, positive, ranges,
                             space.context.seed, artifact)
