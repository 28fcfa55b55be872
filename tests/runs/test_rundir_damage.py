"""A run directory that survives damage: a truncated checkpoint costs one generation and one `error:` line, a
tampered one is refused before it is unpickled, and the resumed run ends on the same front as an uninterrupted one."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import REPO  # noqa: E402

from runs.rundir import MAGIC, RunDirectory  # noqa: E402
from search.protocols import UserError  # noqa: E402

SPEC = """
seed = 3
[space]
name = "bitstring"
length = 48
[[objectives]]
name = "trap"
k = 4
work_seconds = 0.002
[[objectives]]
name = "onemax"
[search]
population = 24
generations = 40
[backend]
kind = "local"
timeout = 5.0
"""


class Marker:
    """Unpickling this creates a file: proof that a refused checkpoint was never unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _run_dir(tmp_path) -> RunDirectory:
    return RunDirectory.create(tmp_path / "run", {"seed": 0})


class FakeState:
    def __init__(self, generation):
        self.generation = generation


def test_previous_checkpoint_is_kept_and_used_when_the_last_is_truncated(tmp_path):
    run = _run_dir(tmp_path)
    run.save_checkpoint(FakeState(1))
    run.save_checkpoint(FakeState(2))
    assert run.read_checkpoint(run.previous_checkpoint_path).generation == 1
    data = run.checkpoint_path.read_bytes()
    run.checkpoint_path.write_bytes(data[: len(data) // 2])
    lines = []
    assert run.load_checkpoint(lines.append).generation == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {run.checkpoint_path} is truncated (")
    assert lines[0].endswith("resuming from checkpoint.prev.pkl (generation 1)")


def test_tampered_checkpoint_is_refused_without_unpickling(tmp_path):
    run = _run_dir(tmp_path)
    run.save_checkpoint(FakeState(4))
    marker = tmp_path / "unpickled"
    payload = pickle.dumps({"version": 2, "state": Marker(str(marker))})
    forged = MAGIC + f"{len(payload)} {'0' * 64}\n".encode() + payload   # right length, HMAC without the key
    run.previous_checkpoint_path.write_bytes(run.checkpoint_path.read_bytes())
    run.checkpoint_path.write_bytes(forged)
    lines = []
    assert run.load_checkpoint(lines.append).generation == 4
    assert lines == [f"error: {run.checkpoint_path} fails its HMAC check (changed since evoforge wrote it); "
                     "resuming from checkpoint.prev.pkl (generation 4)"]
    run.previous_checkpoint_path.write_bytes(forged)
    with pytest.raises(UserError, match="no checkpoint can be trusted"):
        run.load_checkpoint(lines.append)
    assert not marker.exists()


def test_one_flipped_bit_fails_the_hmac(tmp_path):
    run = _run_dir(tmp_path)
    run.save_checkpoint(FakeState(7))
    data = bytearray(run.checkpoint_path.read_bytes())
    data[-5] ^= 0x01
    run.checkpoint_path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="fails its HMAC check"):
        run.load_checkpoint()   # no checkpoint.prev.pkl after a single save


def _cli(argv, capsys):
    """The real entry point in-process (no second interpreter to start): (exit code, stderr)."""
    from runs.cli import main

    try:
        main([str(a) for a in argv])
        code = 0                                   # main returns normally on success
    except SystemExit as stop:
        code = stop.code or 0
    return code, capsys.readouterr().err


def _comparable(stats):
    return [{k: v for k, v in s.items() if k not in ("elapsed", "evals_per_s")} for s in stats]


def _stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_truncated_checkpoint_after_a_kill_resumes_to_the_same_front(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    reference = tmp_path / "reference"
    assert _cli(["run", spec, "--out", reference, "--quiet"], capsys)[0] == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "runs.cli", "run", str(spec), "--out", str(killed), "--quiet"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        stats = killed / "stats.jsonl"
        if stats.exists() and len(stats.read_text().splitlines()) >= 12:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "front.json").exists(), "the run finished before it could be killed"
    checkpoint = killed / "checkpoint.pkl"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) - 100])          # a copy cut short / a full disk

    code, stderr = _cli(["resume", killed, "--quiet"], capsys)
    assert code == 0, stderr
    errors = [line for line in stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in stderr
    assert errors[0].startswith(f"error: {checkpoint} is truncated (")
    assert "resuming from checkpoint.prev.pkl (generation " in errors[0]
    front = json.loads((killed / "front.json").read_text())
    assert front == json.loads((reference / "front.json").read_text())
    assert _comparable(_stats(killed)) == _comparable(_stats(reference))
    assert len(_stats(killed)) == 41     # the initial generation and 40 more, none logged twice


def test_resume_with_every_checkpoint_tampered_is_one_error_line(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("generations = 40", "generations = 3"))
    run = tmp_path / "run"
    assert _cli(["run", spec, "--out", run, "--quiet"], capsys)[0] == 0
    for name in ("checkpoint.pkl", "checkpoint.prev.pkl"):
        data = bytearray((run / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (run / name).write_bytes(bytes(data))
    code, stderr = _cli(["resume", run, "--quiet"], capsys)
    assert code == 2
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(f"error: {run / 'checkpoint.pkl'} fails its HMAC check")
    assert "no checkpoint can be trusted" in stderr
