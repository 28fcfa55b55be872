"""`evoforge validate SCHEDULE`: certify a megakernel schedule file (JSON, spaces/megakernel/ir.py) or explain why not."""

from __future__ import annotations

from pathlib import Path

from objectives.schedule_validator import validate as validate_schedule
from search.protocols import UserError


def validate(path: str) -> int:
    """Print ACCEPT or REJECT with one line per violation (rule, tasks, buffer); return the exit code
    (0 accepted, 1 rejected). A missing or unreadable file is a UserError; a malformed schedule is a rejection."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"SCHEDULE: no file at {path!r}; pass a schedule JSON (e.g. from `evoforge emit RUNDIR --lang json`)")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"SCHEDULE: cannot read {path!r} ({e}); pass a UTF-8 JSON file") from None
    verdict = validate_schedule(text)
    print(f"{path}: {verdict.report(limit=50)}")
    return 0 if verdict.accepted else 1
