"""SIGKILL in the middle of `evoforge run`, then `evoforge resume`: same front as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import REPO, evoforge  # noqa: E402

SPEC = """
seed = 5
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


def comparable(stats):
    return [{k: v for k, v in s.items() if k not in ("elapsed", "evals_per_s")} for s in stats]


def read_stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_killed_run_resumes_to_the_same_front(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    reference = tmp_path / "reference"
    assert evoforge("run", spec, "--out", reference, "--quiet").returncode == 0

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
    generations_before = len(read_stats(killed))
    assert 12 <= generations_before < 41

    resumed = evoforge("resume", killed, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((killed / "front.json").read_text()) == json.loads((reference / "front.json").read_text())
    assert comparable(read_stats(killed)) == comparable(read_stats(reference))
    assert "discovered code written to" in resumed.stdout


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("generations = 40", "generations = 3"))
    run = tmp_path / "run"
    assert evoforge("run", spec, "--out", run, "--quiet").returncode == 0
    before = (run / "front.json").read_text()
    assert evoforge("resume", run, "--quiet").returncode == 0
    assert (run / "front.json").read_text() == before
    assert len(read_stats(run)) == 4
