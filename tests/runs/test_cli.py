"""The command line end to end: run on an embedded Ray, report, emit, and the emitted code runs."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import evoforge  # noqa: E402

FAULTY_SPEC = """
seed = 1
[space]
name = "bitstring"
length = 12
[[objectives]]
name = "faulty"
hang_seconds = 600.0
[search]
population = 12
generations = 3
[backend]
kind = "ray"
workers = 2
timeout = 0.5
"""


def test_run_on_embedded_ray_then_report_and_emit(tmp_path):
    out = tmp_path / "run"
    result = evoforge("run", "trap", "--out", out, "--seed", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    code_line = [line for line in result.stdout.splitlines() if line.startswith("discovered code written to ")]
    path = Path(code_line[0].removeprefix("discovered code written to "))
    ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True)
    assert ran.returncode == 0 and set(ran.stdout.strip()) <= {"0", "1"} and len(ran.stdout.strip()) == 64

    report = evoforge("report", out)
    assert report.returncode == 0 and (out / "convergence.png").stat().st_size > 10_000
    assert "trap" in report.stdout and "ones" in report.stdout

    emitted = evoforge("emit", out, "--lang", "c", "--rank", "0")
    assert emitted.returncode == 0
    c_file = Path(emitted.stdout.strip())
    compiled = subprocess.run(["gcc", "-O3", "-c", str(c_file), "-o", str(tmp_path / "bits.o")], capture_output=True)
    assert compiled.returncode == 0, compiled.stderr

    bad_rank = evoforge("emit", out, "--rank", "999")
    assert bad_rank.returncode == 2 and "--rank: 999 is out of range" in bad_rank.stderr
    bad_lang = evoforge("emit", out, "--lang", "latex")
    assert bad_lang.returncode == 2 and "--lang 'latex' is not supported" in bad_lang.stderr


def test_faulty_objective_logs_failures_in_run_directory(tmp_path, monkeypatch):
    """Raises and hangs on real Ray workers: the run completes and failures.jsonl names genome and reason."""
    spec = tmp_path / "faulty.toml"
    spec.write_text(FAULTY_SPEC)
    script = (
        "import sys; sys.path.insert(0, {support!r})\n"
        "import objectives, ray, faulty_objective\n"
        "ray.cloudpickle.register_pickle_by_value(faulty_objective)\n"
        "objectives.REGISTRY['faulty'] = 'faulty_objective:FaultyOneMax'\n"
        "from runs.cli import main\n"
        "main(['run', {spec!r}, '--out', {out!r}, '--quiet'])\n"
    ).format(support=str(Path(__file__).parents[1] / "support"), spec=str(spec), out=str(tmp_path / "run"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    import json

    failures = [json.loads(line) for line in (tmp_path / "run" / "failures.jsonl").read_text().splitlines()]
    reasons = {f["reason"].split(":")[0] for f in failures}
    assert reasons == {"ValueError", "timeout after 0.5 s"}
    assert all(len(f["genome"]) == 12 and "generation" in f for f in failures)
    assert (tmp_path / "run" / "front.json").exists()


def test_presets_lists_shipped_presets():
    result = evoforge("presets")
    assert result.returncode == 0 and "trap" in result.stdout


def test_every_shipped_preset_is_a_valid_spec():
    """`evoforge run NAME` must get past its spec for every preset it lists (megakernel_gpu once did not: its one
    GPU objective defaulted to the measured stage of a staged run, which needs a cheap stage)."""
    from runs import api
    from runs.spec import load_spec

    names = []
    for preset in api.presets():
        spec = load_spec(str(preset.path), {})
        names.append(preset.name)
        assert spec.objectives, preset.name
    assert {"megakernel_gpu", "exp_measured", "quickstart"} <= set(names)


def test_a_gpu_timed_run_on_a_machine_without_one_is_one_error_and_no_run_directory(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = evoforge("run", "megakernel_gpu", "--model-config", "toy", "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: objectives.decode_time:") and "CUDA" in lines[0]
    assert "evoforge run megakernel" in lines[0] and not (tmp_path / "run").exists()
