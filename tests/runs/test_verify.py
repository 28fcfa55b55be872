"""Certificates and `evoforge verify`: every emitted file of every space gets a NAME.cert.json whose checks hold
when re-run on the file, and flipping one constant in the file makes verify fail, naming the check that caught it
(not only the hash)."""

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import evoforge  # noqa: E402

from runs.emit import emit_member  # noqa: E402
from runs.job import start  # noqa: E402
from runs.spec import load_spec  # noqa: E402
from runs.verify import verify  # noqa: E402

SEARCH = """
[search]
population = {population}
generations = {generations}
[backend]
kind = "local"
"""


def _run(tmp_path, name, spec_text, population=30, generations=3):
    spec = tmp_path / f"{name}.toml"
    spec.write_text(spec_text + SEARCH.format(population=population, generations=generations))
    job, run, state = start(load_spec(str(spec), {}), tmp_path / name, progress=False)
    return job, run, state


def _emit(job, run, state, lang):
    path = emit_member(job.space, state, run.code_dir, lang)
    assert path.with_name(path.name + ".cert.json").is_file()
    return path


def _verify(path):
    lines = []
    code = verify(path, log=lines.append)
    return code, lines


def _failed(lines):
    return {line.split(":")[0] for line in lines if ": FAIL" in line}


def _write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n")


@pytest.fixture(scope="module")
def eml_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eml")
    x = np.linspace(0.5, 3.0, 30)
    _write_csv(tmp / "data.csv", ["x", "y"], zip(x, np.e - np.log(x)))     # y = eml(1, x) = e - ln x
    spec = f'seed = 0\n[space]\nname = "eml"\nmax_depth = 2\n[[objectives]]\nname = "fit"\n[[objectives]]\nname = "size"\n' \
           f'[data]\npath = "{tmp / "data.csv"}"\ntarget = "y"\n'
    return _run(tmp, "run", spec)


@pytest.mark.parametrize("lang", ["python", "c"] + [pytest.param(lang, marks=pytest.mark.slow)
                                                     for lang in ("numpy", "sympy", "latex", "eml")])
def test_every_eml_language_is_certified_and_verifies(eml_run, lang):
    job, run, state = eml_run
    path = _emit(job, run, state, lang)
    cert = json.loads(path.with_name(path.name + ".cert.json").read_text())
    assert cert["holds"] and cert["subject"] == "eml(1, x)"
    names = [c["name"] for c in cert["checks"]]
    assert names[0] == "expression.proof"                     # sympy proves the tree equals e - log(x)
    code, lines = _verify(path)
    assert code == 0, lines
    assert len(lines) == 1 + len(names) and all(": ok (" in line for line in lines)


def test_flipping_the_eml_constant_fails_the_agreement_check(eml_run):
    job, run, state = eml_run
    path = _emit(job, run, state, "python")
    source = path.read_text()
    assert "return math.e - math.log(x)" in source
    path.write_text(source.replace("return math.e -", "return 2.718281 -"))   # e to 7 digits
    code, lines = _verify(path)
    assert code == 1
    assert _failed(lines) == {"sha256", "expression.agreement"}
    agreement = next(line for line in lines if line.startswith("expression.agreement"))
    error = float(re.search(r"max error ([0-9.e+-]+) ", agreement).group(1))
    assert 3e-7 < error < 1.9e-6                              # |e - 2.718281| = 1.83e-6, relative to |y| ~ 1..6


def test_optree_c_artifact_verifies_and_a_flipped_constant_fails(tmp_path):
    x = np.linspace(1.0, 4.0, 40)
    _write_csv(tmp_path / "data.csv", ["x", "y"], zip(x, 2.5 * x))
    spec = f'seed = 1\n[space]\nname = "optree"\nmax_depth = 2\noperators = ["add", "mul"]\n' \
           f'[[objectives]]\nname = "fit"\n[[objectives]]\nname = "size"\n' \
           f'[data]\npath = "{tmp_path / "data.csv"}"\ntarget = "y"\n'
    job, run, state = _run(tmp_path, "run", spec, population=40, generations=6)
    path = _emit(job, run, state, "c")
    body = path.read_text()
    assert "return (5.0/2.0)*x;" in body                # sympy's simplify made the fitted 2.5 exact
    assert _verify(path)[0] == 0
    path.write_text(body.replace("(5.0/2.0)", "(5.1/2.0)"))
    code, lines = _verify(path)
    assert code == 1 and _failed(lines) == {"sha256", "expression.agreement"}


def test_float32_c_artifact_verifies_and_a_flipped_coefficient_fails(tmp_path):
    spec = 'seed = 0\n[space]\nname = "float32"\ntarget = "exp"\nmax_ops = 8\nseed_polynomials = true\n' \
           '[[objectives]]\nname = "ulp"\nsamples = 2000\n[[objectives]]\nname = "ops"\n'
    job, run, state = _run(tmp_path, "run", spec, population=8, generations=1)
    path = _emit(job, run, state, "c")
    cert = json.loads(path.with_name(path.name + ".cert.json").read_text())
    (check,) = cert["checks"]
    assert check["name"] == "float32.max_ulp" and check["params"]["mode"] in ("strided", "exhaustive")
    assert check["result"]["count"] >= 2 ** 20 and check["result"]["max_ulp"] <= 1.0
    assert "libm" in check["method"]
    moved = tmp_path / "elsewhere"                  # the file and its certificate alone, the run directory gone
    moved.mkdir()
    for f in (path, path.with_name(path.name + ".cert.json")):
        shutil.copy(f, moved / f.name)
    shutil.rmtree(run.path)
    path = moved / path.name
    assert _verify(path)[0] == 0
    body = path.read_text()
    half = "0x1.0000000000000p-1f"                  # the x^2 / 2 coefficient of the Horner polynomial
    assert body.count(half) == 1
    path.write_text(body.replace(half, "0x1.1000000000000p-1f"))
    code, lines = _verify(path)
    assert code == 1 and _failed(lines) == {"sha256", "float32.max_ulp"}


MEGAKERNEL = """seed = 0
[space]
name = "megakernel"
hidden_size = 16
intermediate_size = 32
num_hidden_layers = 1
num_attention_heads = 2
num_key_value_heads = 1
vocab_size = 16
max_position_embeddings = 4
workers = 3
rows = [8]
heads = [1]
[[objectives]]
name = "schedule_validator"
[[objectives]]
name = "makespan"
"""


def test_megakernel_schedule_and_kernel_verify_and_a_flipped_region_fails(tmp_path):
    job, run, state = _run(tmp_path, "run", MEGAKERNEL, population=8, generations=2)
    path = _emit(job, run, state, "json")
    cert = json.loads(path.with_name(path.name + ".cert.json").read_text())
    assert [c["name"] for c in cert["checks"]] == ["megakernel.validator", "megakernel.explorer", "megakernel.executor"]
    assert cert["holds"]
    assert _verify(path)[0] == 0
    cuda = _emit(job, run, state, "cuda")
    assert _verify(cuda)[0] == 0
    schedule = json.loads(path.read_text())
    task = next(t for t in schedule["tasks"] if t["op"] == "matvec" and t["writes"][0][1] == 0)
    task["writes"][0][2] += 1                       # one element into the next tile's output
    path.write_text(json.dumps(schedule, indent=1) + "\n")
    code, lines = _verify(path)
    assert code == 1 and {"sha256", "megakernel.validator", "megakernel.explorer"} <= _failed(lines)
    text = cuda.read_text()
    first = re.search(r"\{(\d+), ", text)
    cuda.write_text(text[:first.start(1)] + str(int(first.group(1)) + 1) + text[first.end(1):])
    code, lines = _verify(cuda)
    assert code == 1 and _failed(lines) == {"sha256", "megakernel.cuda_source"}


def test_cli_exit_codes_and_lines(eml_run, tmp_path, capsys):
    job, run, state = eml_run
    path = _emit(job, run, state, "c")
    ok = evoforge("verify", path)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1].startswith("expression.agreement: ok (max error")
    path.write_text(path.read_text().replace("M_E", "2.7182818"))
    bad = evoforge("verify", path.with_name(path.name + ".cert.json"))     # the certificate's path works too
    assert bad.returncode == 1 and "expression.agreement: FAIL (max error" in bad.stdout
    lone = tmp_path / "lone.c"
    lone.write_text("double f(double x) { return x; }\n")
    from runs.cli import main  # in-process: the same entry point, without another import

    with pytest.raises(SystemExit) as stop:
        main(["verify", str(lone)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: PATH: {lone} has no certificate (lone.c.cert.json is missing)")


@pytest.mark.slow
def test_compressed_student_verifies_and_a_flipped_weight_fails(tmp_path, monkeypatch):
    """A micro `evoforge compress` (about a minute on 2 cores): its folder certificate holds; one changed byte in
    the weights fails the file check and names the file."""
    import inspect

    from runs.compress import CompressSettings, compress

    monkeypatch.setenv("EVOFORGE_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "texts"
    texts.mkdir()
    for i, module in enumerate((json, inspect, re)):
        (texts / f"m{i}.py").write_text(inspect.getsource(module)[:5000])
    micro = CompressSettings(seq_length=32, population=16, generations=5, vocab_floors=2, rerank_steps=3,
                             final_steps=6, batch_size=4, max_length=32, train_snippets=40, held_out_snippets=12,
                             latency_repeats=2, static_widths=(32,), static_steps=30, static_batch_size=8,
                             latency_texts=4, peer=False)
    out = compress("", "1MB", str(texts), str(tmp_path / "student"), False, 1, micro)
    cert = json.loads((out / "student.cert.json").read_text())
    assert cert["holds"] and [c["name"] for c in cert["checks"]] == ["student.files", "student.size", "student.report"]
    assert cert["checks"][1]["result"]["file_bytes"] <= 1_000_000
    code, lines = _verify(out)
    assert code == 0, lines
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0x40                                  # one bit of the last float16 weight
    weights.write_bytes(bytes(data))
    code, lines = _verify(out)
    assert code == 1 and _failed(lines) == {"sha256", "student.files"}
    assert "changed: model.safetensors" in next(line for line in lines if line.startswith("student.files"))


@pytest.mark.slow     # transformers is imported three times in subprocesses: about 2 minutes on 2 loaded cores
@pytest.mark.parametrize("lang", ["json", "python"])
def test_student_shape_builds_with_transformers_and_a_flipped_width_fails(tmp_path, lang):
    spec = 'seed = 0\n[space]\nname = "transformer_shapes"\nseq_length = 32\n' \
           '[[objectives]]\nname = "model_size"\nlimit_mb = 2.0\n[[objectives]]\nname = "gflops"\n'
    job, run, state = _run(tmp_path, "run", spec, population=12, generations=2)
    path = _emit(job, run, state, lang)
    cert = json.loads(path.with_name(path.name + ".cert.json").read_text())
    (check,) = cert["checks"]
    assert check["name"] == "student.shape_parameters" and check["passed"]
    assert check["result"]["parameters"] == check["params"]["parameters"] > 0   # transformers agrees with the count
    assert _verify(path)[0] == 0
    body = path.read_text()
    key = '"intermediate_size": ' if lang == "json" else "intermediate_size="
    width = int(re.search(re.escape(key) + r"(\d+)", body).group(1))
    path.write_text(body.replace(f"{key}{width}", f"{key}{width + 16}"))
    code, lines = _verify(path)
    assert code == 1 and _failed(lines) == {"sha256", "student.shape_parameters"}


def test_a_check_that_cannot_run_is_recorded_not_raised(eml_run, monkeypatch):
    job, run, state = eml_run
    monkeypatch.setenv("PATH", "/nonexistent")            # no C compiler to be found
    path = _emit(job, run, state, "c")
    cert = json.loads(path.with_name(path.name + ".cert.json").read_text())
    agreement = cert["checks"][-1]
    assert not cert["holds"] and agreement["name"] == "expression.agreement" and not agreement["passed"]
    assert agreement["summary"] == "could not run: RuntimeError: no C compiler (cc or gcc) on PATH"


@pytest.mark.slow
def test_float32_exhaustive_certificate_walks_every_input(tmp_path, monkeypatch):
    """All 2^32 inputs of the emitted C (a few minutes on 2 cores)."""
    import spaces.float32.certificate as f32

    monkeypatch.setattr(f32, "EXHAUSTIVE_BUDGET_S", float("inf"))
    spec = 'seed = 0\n[space]\nname = "float32"\ntarget = "exp"\nmax_ops = 8\nseed_polynomials = true\n' \
           '[[objectives]]\nname = "ulp"\nsamples = 2000\n[[objectives]]\nname = "ops"\n'
    job, run, state = _run(tmp_path, "run", spec, population=8, generations=1)
    path = _emit(job, run, state, "c")
    (check,) = json.loads(path.with_name(path.name + ".cert.json").read_text())["checks"]
    hard = len(check["params"]["hard_points"])
    assert check["params"]["mode"] == "exhaustive" and check["result"]["count"] == 2 ** 32 + hard
    assert check["passed"] and check["result"]["max_ulp"] <= 1.0
    print(f"exhaustive max ULP {check['result']['max_ulp']:.4f} at {check['result']['worst_input']!r}")


def test_bitstring_artifact_verifies_and_a_flipped_bit_fails(tmp_path):
    from runs.certificate import certify_artifact
    from runs.verify import verify
    from search.protocols import Context
    from spaces.bitstring import BitStringSpace

    space = BitStringSpace(BitStringSpace.Config(length=12), Context())
    genome = (1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0)
    for lang, name in (("python", "bits.py"), ("c", "bits.c")):
        path = tmp_path / name
        path.write_text(space.emit(genome, lang))
        certify_artifact(space, genome, lang, path.read_text(), path)
        assert verify(path, lambda line: None) == 0
    path = tmp_path / "bits.c"
    path.write_text(path.read_text().replace("{1, 0, 1", "{0, 0, 1"))
    lines: list[str] = []
    assert verify(path, lines.append) == 1 and any(line.startswith("bitstring.bits: FAIL") for line in lines)


def test_eml_constants_artifact_verifies_and_a_changed_constant_fails(tmp_path):
    data = Path(__file__).resolve().parents[2] / "runs" / "presets" / "data" / "nernst.csv"
    spec = f'seed = 0\n[space]\nname = "eml_constants"\nmax_depth = 3\n[[objectives]]\nname = "fit"\n' \
           f'[data]\npath = "{data}"\ntarget = "E"\n'
    job, run, state = _run(tmp_path, "run", spec, population=20, generations=2)
    path = _emit(job, run, state, "python")
    assert _verify(path)[0] == 0
    body = path.read_text()
    assert body.count("return ") == 1
    path.write_text(body.replace("return ", "return 1e-3 + ", 1))      # the function shifted by a constant
    code, lines = _verify(path)
    assert code == 1 and "expression.agreement" in _failed(lines)
