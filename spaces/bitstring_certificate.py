"""The bit-string space's certifier: the emitted file holds exactly the evolved bits (read back from the Python
tuple or the C array, never executed), and the count of ones that OneMax scored."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from runs.certificate import Check, Outcome, run_check


def _bits(artifact: Path) -> tuple[int, ...]:
    text = artifact.read_text()
    if artifact.suffix == ".c":
        body = re.search(r"\{([^}]*)\}", text)
        return tuple(int(b) for b in body.group(1).split(",")) if body else ()
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "BITS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def bits(artifact: Path, params: dict[str, Any]) -> Outcome:
    found = _bits(Path(artifact))
    same = list(found) == list(params["bits"])
    return Outcome(same, {"length": len(found), "ones": sum(found)},
                   f"{len(found)} bits, {sum(found)} ones: " + ("the evolved string" if same else
                                                                "NOT the evolved string"))


def certify(space, genome, lang: str, source: str, artifact: Path) -> list[Check]:
    return [run_check("bitstring.bits", "the file holds the evolved bit string", "the literal read back from the file "
                      "(Python tuple or C array), compared bit by bit", {"bits": list(genome)}, artifact)]
