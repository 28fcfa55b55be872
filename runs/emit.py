"""Writing a front member's code to a file, with its certificate: the end of every run and `evoforge emit`."""

from __future__ import annotations

from pathlib import Path

from runs.certificate import certify_artifact
from search.engine import EngineState
from search.protocols import Space, UserError

EXTENSIONS = {"python": "py", "numpy": "py", "c": "c", "sympy": "txt", "latex": "tex", "triton": "py",
              "cuda": "cu", "json": "json"}


def emit_member(space: Space, state: EngineState, code_dir: Path, lang: str | None = None, rank: int = 0) -> Path:
    """Emit front member `rank` (0 = best by the first objective) in `lang` (default: the space's first language)."""
    lang = lang or space.emit_languages[0]
    if lang not in space.emit_languages:
        raise space.unsupported(lang)
    if not state.front:
        raise UserError("front: the run has no feasible individual to emit; run longer or relax the constraints")
    if not 0 <= rank < len(state.front):
        raise UserError(f"--rank: {rank} is out of range; the front has {len(state.front)} member(s), ranks 0..{len(state.front) - 1}")
    source = space.emit(state.front[rank].genome, lang)
    code_dir.mkdir(parents=True, exist_ok=True)
    suffix = "_numpy" if lang == "numpy" else ""
    path = code_dir / f"rank{rank}{suffix}.{EXTENSIONS.get(lang, 'txt')}"
    path.write_text(source)
    certify_artifact(space, state.front[rank].genome, lang, source, path)   # NAME.cert.json beside it
    return path
