"""One spec, three processes: does the seed alone fix the run, through a SIGKILL and a resume?

Run A goes to the end with PYTHONHASHSEED=1. Run B, with PYTHONHASHSEED=2, is SIGKILLed once it has logged
`kill_after` generations and resumed by a third process with PYTHONHASHSEED=3. A and B must then have the same
front.json and the same stats.jsonl, timing fields aside: the same seed in separate processes (hash order
differs), with and without an interruption. A and B run at the same time to halve the wall time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMING = ("elapsed", "evals_per_s")


def _cli(args: list[str], hash_seed: int, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    return subprocess.Popen([sys.executable, "-m", "runs.cli", *args], cwd=REPO, env=env, **popen)


def _stats(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "stats.jsonl").read_text().splitlines()]


def check_same_seed_and_resume(tmp_path: Path, spec_text: str, generations: int, kill_after: int) -> dict:
    """Returns run A's front.json (for space-specific checks); asserts everything the module docstring says."""
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text)
    a, b = tmp_path / "a", tmp_path / "b"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_a = _cli(["run", str(spec), "--out", str(a), "--quiet"], 1, **quiet)
    run_b = _cli(["run", str(spec), "--out", str(b), "--quiet"], 2, **quiet)
    deadline = time.time() + 600
    while time.time() < deadline and run_b.poll() is None:
        stats = b / "stats.jsonl"
        if stats.exists() and len(stats.read_text().splitlines()) >= kill_after:
            break
        time.sleep(0.005)
    os.kill(run_b.pid, signal.SIGKILL)
    run_b.wait()
    assert not (b / "front.json").exists(), "run B finished before it could be killed; raise `generations`"
    logged = len((b / "stats.jsonl").read_text().splitlines())
    assert kill_after <= logged <= generations
    _, err = run_a.communicate(timeout=600)
    assert run_a.returncode == 0, err
    resumed = _cli(["resume", str(b), "--quiet"], 3, **quiet)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    front_a = json.loads((a / "front.json").read_text())
    assert front_a["front"], "empty front: nothing to compare"
    assert json.loads((b / "front.json").read_text()) == front_a
    stats_a = _stats(a)
    assert len(stats_a) == generations + 1
    assert _stats(b) == stats_a
    return front_a
