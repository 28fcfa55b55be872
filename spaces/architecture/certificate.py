"""The compressed student's certificate (`evoforge compress`): a sha256 of every file in the folder, the size
limit re-measured from the weight files on disk (bytes, MB = 10^6 bytes) and from their safetensors headers
(parameters x bytes per dtype), and the fidelity and latency figures of report.json. The figures were measured at
compress time against the teacher on the held-out snippets; verify checks that report.json still states them,
it does not re-measure them (that needs the teacher and the corpus).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from runs.certificate import FOLDER_CERTIFICATE, Outcome, run_check, tool_versions, write_certificate

MB = 1e6
DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
FIGURES = ("mean_cosine", "top1_agreement", "latency_ms", "student_latency_b1_ms", "student_latency_b32_ms",
           "teacher_latency_b1_ms", "teacher_latency_b32_ms", "latency_ratio_b1", "latency_ratio_b32", "gflops",
           "file_mb", "parameters")


def _manifest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != FOLDER_CERTIFICATE}


def files(artifact: Path, params: dict[str, Any]) -> Outcome:
    """Every file of the student as certified: none changed, missing or added."""
    now, certified = _manifest(artifact), params["files"]
    changed = sorted(k for k in certified if k in now and now[k] != certified[k])
    missing = sorted(set(certified) - set(now))
    added = sorted(set(now) - set(certified))
    passed = not (changed or missing or added)
    detail = "; ".join(f"{what}: {', '.join(names[:5])}" for what, names in
                       (("changed", changed), ("missing", missing), ("added", added)) if names)
    return Outcome(passed, {"changed": changed, "missing": missing, "added": added},
                   f"all {len(now)} files as certified" if passed else detail)


def _safetensors_parameters(path: Path) -> tuple[int, int]:
    """(parameters, bytes of tensor data) from a safetensors header, without loading the tensors."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    count = nbytes = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        n = math.prod(info["shape"])
        count += n
        nbytes += n * DTYPE_BYTES[info["dtype"]]
    return count, nbytes


def size(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The weight files on disk are within the limit."""
    weights = sorted(artifact.rglob("*.safetensors"))
    if not weights:
        return Outcome(False, {"file_bytes": 0}, "no .safetensors weight file in the folder")
    file_bytes = sum(p.stat().st_size for p in weights)
    parameters = tensor_bytes = 0
    for p in weights:
        n, b = _safetensors_parameters(p)
        parameters += n
        tensor_bytes += b
    limit = float(params["limit_mb"])
    passed = file_bytes / MB <= limit
    return Outcome(passed, {"file_bytes": file_bytes, "parameters": parameters, "tensor_bytes": tensor_bytes},
                   f"{file_bytes / MB:.4f} MB of weight files on disk (limit {limit:g} MB = 10^6 bytes); "
                   f"{parameters} parameters in {len(weights)} file(s)")


def report_figures(artifact: Path, params: dict[str, Any]) -> Outcome:
    """report.json states the certified fidelity and latency figures."""
    report = json.loads((artifact / "report.json").read_text())
    student = report.get("student", {})
    differ = sorted(k for k, v in params["figures"].items() if student.get(k) != v)
    f = params["figures"]
    shown = [text.format(f[key]) for key, text in (("mean_cosine", "held-out mean cosine {:.4f}"),
                                                   ("top1_agreement", "top-1 agreement {:.3f}"),
                                                   ("latency_ms", "{:.3f} ms per text"),
                                                   ("latency_ratio_b1", "{:.1f}x faster than the teacher at batch 1"))
             if isinstance(f.get(key), (int, float))]
    return Outcome(not differ, {"differ": differ},
                   ", ".join(shown) + " (measured at compress time)"
                   if not differ else f"report.json differs from the certificate in {', '.join(differ)}")


def certify_student(folder: Path, limit_mb: float) -> Path:
    """Write DIR/student.cert.json for a finished student folder (the end of `evoforge compress`)."""
    folder = Path(folder)
    report = json.loads((folder / "report.json").read_text())
    figures = {k: report["student"][k] for k in FIGURES if k in report.get("student", {})}
    checks = [
        run_check("student.files", "the student's files are the ones compress wrote", "sha256 of every file",
                  {"files": _manifest(folder)}, folder),
        run_check("student.size", f"the weights fit in {limit_mb:g} MB", "sum of the .safetensors file sizes on "
                  "disk; parameters counted from their headers", {"limit_mb": limit_mb}, folder),
        run_check("student.report", "fidelity and latency against the teacher",
                  "held-out mean cosine and top-1 retrieval agreement, CPU latency at batch 1 and 32, as measured "
                  "by compress and written to report.json; verify does not re-measure them",
                  {"figures": figures}, folder),
    ]
    tools = tool_versions(("torch", "transformers", "safetensors"))
    shape = report["student"].get("shape", {})
    subject = "student " + ", ".join(f"{k}={v}" for k, v in shape.items())
    return write_certificate(folder, "transformer_shapes", "safetensors", subject, checks, tools)


# ---- a searched shape emitted by `evoforge run` (transformer_shapes space): config.json or a Python builder ------
_COUNT_DRIVER = r'''
import json, runpy, sys
import torch
from transformers import BertConfig, BertModel
path, lang = sys.argv[1:3]
with torch.device("meta"):                     # shapes only: no weights are allocated
    if lang == "json":
        model = BertModel(BertConfig(**json.load(open(path))))
    else:
        model = runpy.run_path(path, run_name="evoforge_verify")["model"]
print(sum(p.numel() for p in model.parameters()))
'''


def shape_parameters(artifact: Path, params: dict[str, Any]) -> Outcome:
    """transformers builds the BertModel the artifact describes; its parameter count is the searched shape's."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _COUNT_DRIVER, str(artifact), params["lang"]], capture_output=True,
                         text=True, timeout=600)
    if run.returncode:
        raise RuntimeError(f"transformers cannot build it: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    got = int(run.stdout.split()[-1])
    passed = got == int(params["parameters"])
    return Outcome(passed, {"parameters": got}, f"BertModel of {got} parameters" +
                   ("" if passed else f", not the searched shape's {params['parameters']}"))


def certify(space, genome, lang: str, source: str, artifact: Path) -> list:
    """A static student (a table, no BertModel) is certified by its hash alone."""
    from objectives.model_size import encoder_tensors

    if genome.static:
        return []
    expected = sum(math.prod(shape) for _, shape in encoder_tensors(genome))
    return [run_check("student.shape_parameters", "the artifact builds the searched student shape",
                      "BertModel built by transformers from the artifact on the meta device, parameters counted; "
                      "expected: the analytic count of objectives/model_size.py (encoder with pooler)",
                      {"lang": lang, "parameters": expected}, artifact)]
