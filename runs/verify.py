"""`evoforge verify PATH`: re-run every check of an artifact's certificate on the artifact as it is now.

Needs only the artifact and its certificate (no run directory). Prints one line per check, `ok` or `FAIL`, and
returns 0 when every check holds, 1 when any does not (a changed file, a failed proof, an error bound exceeded).
Checks run the artifact: Python files are imported in a subprocess and C files compiled with the system compiler,
so verify what you would be willing to run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runs.certificate import check_function, read_certificate, sha256


def verify(path: Path, log: Callable[[str], None] = print) -> int:
    cert, artifact = read_certificate(Path(path))
    failures = 0
    if not artifact.exists():
        log(f"sha256: FAIL ({artifact} is missing)")
        return 1
    digest = sha256(artifact)
    if digest == cert["sha256"]:
        log(f"sha256: ok ({digest[:16]}... matches the certificate)")
    else:
        failures += 1
        log(f"sha256: FAIL (the file changed: {digest[:16]}... is not the certified {cert['sha256'][:16]}...)")
    for i, check in enumerate(cert["checks"]):
        name = check.get("name") if isinstance(check, dict) else None
        params = check.get("params") if isinstance(check, dict) else None
        try:
            run = check_function(name)
        except (KeyError, ValueError, AttributeError, TypeError):
            failures += 1
            log(f"checks[{i}]: FAIL (unknown check {name!r}; this evoforge cannot re-run it)")
            continue
        if not isinstance(params, dict):
            failures += 1
            log(f"{name}: FAIL (the certificate gives no parameters)")
            continue
        try:
            outcome = run(artifact, params)
        except Exception as exc:  # noqa: BLE001 - a damaged artifact or certificate is a failed check, not a crash
            failures += 1
            log(f"{name}: FAIL ({type(exc).__name__}: {exc})")
            continue
        certified = check.get("summary")
        note = f"; certified: {certified}" if certified and certified != outcome.summary else ""
        if outcome.passed:
            log(f"{name}: ok ({outcome.summary}{note})")
        else:
            failures += 1
            log(f"{name}: FAIL ({outcome.summary}{note})")
    if not cert["checks"]:
        log("note: the certificate has no checks beyond the hash")
    return 1 if failures else 0
