"""Certificates: the evidence that an emitted artifact does what its run says, in `NAME.cert.json` beside it.

A certificate names the artifact, its sha256, the space and language, the tool versions, and a list of checks.
Each check records what was claimed, how it was checked, every parameter needed to check it again (points, seeds,
tolerances, the certified formula or schedule), the figures it produced and whether it held. `evoforge verify`
re-runs each check from those parameters alone, on the artifact as it is now, without the run directory.

Extension point: a per-space certifier module, registered by space name in `CERTIFIERS`, provides
`certify(space, genome, lang, source, artifact) -> list[Check]`, and registers the checks it uses in `CHECKS`
(name -> "module:function"). A check function is `run(artifact: Path, params: dict) -> Outcome`; the certifier
calls it once to fill the certificate, the verifier calls it again. Only checks named in `CHECKS` are ever run,
so a certificate cannot make `verify` import or call anything else. Example (a space whose artifact is a number)::

    def exact_value(artifact, params):            # registered as CHECKS["number.value"]
        got = float(artifact.read_text())
        return Outcome(got == params["value"], {"value": got}, f"value {got!r}")

    def certify(space, genome, lang, source, artifact):
        return [run_check("number.value", "the file holds the genome's value", "float() of the text",
                          {"value": float(genome)}, artifact)]
"""

from __future__ import annotations

import hashlib
import importlib
import json
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from search.protocols import UserError

FORMAT = "evoforge-certificate/1"
SUFFIX = ".cert.json"
FOLDER_CERTIFICATE = "student.cert.json"   # a folder artifact (a compressed student) holds its certificate inside

CERTIFIERS: dict[str, str] = {
    "eml": "spaces.eml.certificate",
    "eml_constants": "spaces.eml.constants_certificate",
    "optree": "spaces.expression_certificate",
    "sr": "spaces.expression_certificate",
    "bitstring": "spaces.bitstring_certificate",          # operator trees too (spaces/sr.py extends optree)
    "float32": "spaces.float32.certificate",
    "float32_structure": "spaces.float32.certificate",
    "megakernel": "spaces.megakernel.certificate",
    "megakernel_stream": "spaces.megakernel.stream_certificate",
    "transformer_shapes": "spaces.architecture.certificate",   # also `certify_student`, called by compress
}

CHECKS: dict[str, str] = {
    "expression.proof": "spaces.expression_certificate:proof",
    "expression.agreement": "spaces.expression_certificate:agreement",
    "expression.latex": "spaces.expression_certificate:latex_rendering",
    "float32.max_ulp": "spaces.float32.certificate:max_ulp",
    "float32.python_parses": "spaces.float32.certificate:python_parses",
    "megakernel.validator": "spaces.megakernel.certificate:validator",
    "megakernel.executor": "spaces.megakernel.certificate:executor",
    "megakernel.explorer": "spaces.megakernel.certificate:explorer",
    "megakernel.cuda_source": "spaces.megakernel.certificate:cuda_source",
    "megakernel_stream.validator": "spaces.megakernel.stream_certificate:validator",
    "megakernel_stream.small_config": "spaces.megakernel.stream_certificate:small_config",
    "megakernel_stream.source": "spaces.megakernel.stream_certificate:source",
    "bitstring.bits": "spaces.bitstring_certificate:bits",
    "student.files": "spaces.architecture.certificate:files",
    "student.size": "spaces.architecture.certificate:size",
    "student.report": "spaces.architecture.certificate:report_figures",
    "student.shape_parameters": "spaces.architecture.certificate:shape_parameters",
}


@dataclass
class Outcome:
    """What one run of a check found: whether it held, its figures (JSON), and one line for a person."""

    passed: bool
    result: dict[str, Any]
    summary: str


@dataclass
class Check:
    name: str                 # a key of CHECKS
    claim: str                # what was checked, one sentence
    method: str               # how it was checked
    params: dict[str, Any]    # everything needed to run it again
    result: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    summary: str = ""


def check_function(name: str):
    if name not in CHECKS:
        raise KeyError(name)
    module, function = CHECKS[name].split(":")
    return getattr(importlib.import_module(module), function)


def run_check(name: str, claim: str, method: str, params: dict[str, Any], artifact: Path) -> Check:
    """Run a registered check once and return it with its outcome (what `certify` puts in the certificate). A check
    that cannot run here (no C compiler, a missing package) is recorded as not holding, with the reason: the
    certificate then says so, and the run that emitted the file still finishes."""
    try:
        outcome = check_function(name)(Path(artifact), params)
    except Exception as exc:  # noqa: BLE001 - the certificate records it; `evoforge verify` re-runs it later
        return Check(name, claim, method, params, {"error": f"{type(exc).__name__}: {exc}"}, False,
                     f"could not run: {type(exc).__name__}: {exc}")
    return Check(name, claim, method, params, outcome.result, bool(outcome.passed), outcome.summary)


def sha256(path: Path) -> str:
    """Hex sha256 of a file, or of a folder as the sorted `sha256  relative/path` lines of its files (the folder's
    own certificate left out)."""
    path = Path(path)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    lines = [f"{sha256(p)}  {p.relative_to(path).as_posix()}\n" for p in sorted(path.rglob("*"))
             if p.is_file() and p.name != FOLDER_CERTIFICATE]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def certificate_path(artifact: Path) -> Path:
    artifact = Path(artifact)
    return artifact / FOLDER_CERTIFICATE if artifact.is_dir() else artifact.with_name(artifact.name + SUFFIX)


def compiler_version() -> str | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=20).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def tool_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of evoforge, Python and the packages a check leans on (those installed)."""
    out = {"python": platform.python_version()}
    for package in ("evoforge", "numpy", "sympy", "mpmath", *extra):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_certificate(artifact: Path, space: str, lang: str, subject: str, checks: list[Check],
                      tools: dict[str, str]) -> Path:
    """Write the certificate of `artifact` beside it (inside it for a folder) and return its path."""
    artifact = Path(artifact)
    body = {"format": FORMAT, "artifact": artifact.name, "sha256": sha256(artifact), "space": space, "lang": lang,
            "subject": subject, "holds": all(c.passed for c in checks), "tools": tools,
            "checks": [asdict(c) for c in checks]}
    path = certificate_path(artifact)
    path.write_text(json.dumps(body, indent=1, allow_nan=False) + "\n")
    return path


def space_name(space: Any) -> str | None:
    """The registry name of a space instance (None for a space not in spaces.REGISTRY)."""
    from spaces import REGISTRY

    qualified = f"{type(space).__module__}:{type(space).__name__}"
    return next((name for name, entry in REGISTRY.items() if entry == qualified), None)


def certify_artifact(space: Any, genome: Any, lang: str, source: str, artifact: Path) -> Path | None:
    """Certify one emitted file with its space's certifier; None for a space without one."""
    name = space_name(space)
    if name not in CERTIFIERS:
        return None
    module = importlib.import_module(CERTIFIERS[name])
    checks = module.certify(space, genome, lang, source, Path(artifact))
    tools = tool_versions(getattr(module, "TOOLS", ()))
    if getattr(module, "USES_COMPILER", False) and lang == "c":
        tools["cc"] = compiler_version() or "none found"
    return write_certificate(artifact, name, lang, space.describe(genome), checks, tools)


def read_certificate(path: Path) -> tuple[dict[str, Any], Path]:
    """(certificate, artifact path) for PATH = an artifact, a folder artifact or a certificate; UserError when
    there is none or it is not one."""
    path = Path(path)
    if path.name.endswith(SUFFIX) and path.is_file():
        cert_file = path
    elif path.exists():
        cert_file = certificate_path(path)
    else:
        raise UserError(f"PATH: nothing at {path}; give an emitted file, a student folder or a .cert.json")
    if not cert_file.is_file():
        raise UserError(f"PATH: {path} has no certificate ({cert_file.name} is missing); re-emit it with "
                        "`evoforge emit` to get one")
    try:
        cert = json.loads(cert_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"PATH: {cert_file} is not valid JSON ({exc}); re-emit the artifact") from None
    if not isinstance(cert, dict) or cert.get("format") != FORMAT:
        raise UserError(f"PATH: {cert_file} is not an evoforge certificate (format is not {FORMAT!r})")
    if not isinstance(cert.get("artifact"), str) or not isinstance(cert.get("checks"), list) \
            or not isinstance(cert.get("sha256"), str):
        raise UserError(f"PATH: {cert_file} lacks artifact, sha256 or checks; re-emit the artifact")
    if cert_file.name == FOLDER_CERTIFICATE:
        artifact = cert_file.parent
    else:
        artifact = cert_file.with_name(Path(cert["artifact"]).name)
    return cert, artifact
