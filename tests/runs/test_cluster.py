"""A real 2-node Ray cluster on loopback (two `ray start` processes): runs survive killed workers and actors.

Each scenario kills processes of the second node in the middle of an `evoforge run --address ...` and checks that
the run finishes with exactly the front of an undisturbed in-process run of the same spec and seed.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import REPO, evoforge  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")
# As a user with the project's virtual environment activated: `python` on the cluster is that environment's.
ENV = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

SPEC = """
seed = 4
[space]
name = "bitstring"
length = 48
[[objectives]]
name = "trap"
k = 4
work_seconds = 0.01
[search]
population = 40
generations = 14
[backend]
kind = "ray"
timeout = 10.0
"""

ISLANDS = """
[islands]
islands = 2
migration_interval = 2
migrants = 2
hosts = 2
"""


# Seconds any one `ray` command of the fixture may take: under load a command that never returns must fail the
# test, not hang the suite.
RAY_COMMAND_SECONDS = 180


def raylets(tag: str) -> set[int]:
    return {p.pid for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "raylet" and tag in " ".join(p.info["cmdline"] or [])}


@pytest.fixture(scope="module")
def cluster():
    temp = Path(tempfile.mkdtemp(prefix="efr", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = 6400 + os.getpid() % 500
    dashboard = 8300 + os.getpid() % 500
    subprocess.run([RAY, "get-auth-token", "--generate"], env=ENV, check=True, capture_output=True,
                   timeout=RAY_COMMAND_SECONDS)
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={temp}",
                    "--include-dashboard=true", f"--dashboard-port={dashboard}", "--disable-usage-stats"],
                   env=ENV, check=True, capture_output=True, timeout=RAY_COMMAND_SECONDS)
    head = raylets(str(temp))
    subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--disable-usage-stats"],
                   env=ENV, check=True, capture_output=True, timeout=RAY_COMMAND_SECONDS)
    second = raylets(str(temp)) - head
    assert len(head) == 1 and len(second) == 1
    yield {"address": f"127.0.0.1:{port}", "second_raylet": second.pop(), "jobs": f"http://127.0.0.1:{dashboard}"}
    for proc in psutil.process_iter(["cmdline"]):
        if str(temp) in " ".join(proc.info["cmdline"] or []):
            proc.kill()
    shutil.rmtree(temp, ignore_errors=True)


def kill_when(run_dir: Path, generation: int, victims, proc: subprocess.Popen, timeout: float = 120) -> int:
    """Once the run has logged `generation` generations, SIGKILL the processes `victims()` returns."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        stats = run_dir / "stats.jsonl"
        if stats.exists() and len(stats.read_text().splitlines()) >= generation:
            pids = victims()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return len(pids)
        time.sleep(0.05)
    return 0


def run_with_kill(tmp_path: Path, spec_text: str, cluster, victims, after: int) -> tuple[dict, int]:
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text)
    run_dir = tmp_path / "cluster-run"
    proc = subprocess.Popen([sys.executable, "-m", "runs.cli", "run", str(spec), "--address", cluster["address"],
                             "--out", str(run_dir), "--quiet"], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed = kill_when(run_dir, after, victims, proc)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    reference = evoforge("run", spec, "--local", "--out", tmp_path / "local", "--quiet")
    assert reference.returncode == 0, reference.stderr
    front = json.loads((run_dir / "front.json").read_text())
    assert front == json.loads((tmp_path / "local" / "front.json").read_text())
    return front, killed


def test_run_survives_killed_worker_processes_on_one_node(tmp_path, cluster):
    def workers_of_second_node():
        raylet = psutil.Process(cluster["second_raylet"])
        return [c.pid for c in raylet.children(recursive=True) if c.name().startswith("ray::")]

    front, killed = run_with_kill(tmp_path, SPEC, cluster, workers_of_second_node, after=4)
    assert killed >= 1, "no worker of the second node was busy when the run was interrupted"
    assert front["front"], "the run must end with a front"


def test_island_run_survives_a_killed_island_actor(tmp_path, cluster):
    def one_island_actor():
        actors = [p.pid for p in psutil.process_iter(["name", "cmdline"])
                  if "IslandHost" in " ".join(p.info["cmdline"] or [])]
        return actors[:1]

    front, killed = run_with_kill(tmp_path, SPEC + ISLANDS, cluster, one_island_actor, after=6)
    assert killed == 1, "no island actor was found to kill"
    assert front["front"]


@pytest.mark.slow  # a job server start plus a job's runtime_env setup: about a minute on a quiet 2-core machine
def test_submit_runs_the_job_on_the_cluster(tmp_path, cluster):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("generations = 14", "generations = 3"))
    out = tmp_path / "submitted"
    result = evoforge("submit", spec, "--address", cluster["jobs"], "--out", out, "--wait", "--timeout", "60",
                      env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "submitted job raysubmit_" in result.stdout
    assert ": SUCCEEDED" in result.stdout  # --wait reports the job's status changes as they happen
    assert f"discovered code written to {out}/code/rank0.py" in result.stdout
    assert json.loads((out / "front.json").read_text())["front"]


def test_submit_gives_up_with_one_line_when_the_job_server_does_not_answer(tmp_path):
    """A server that accepts connections and never replies (what a starved dashboard looks like): Ray's own client
    would wait forever; `evoforge submit` stops after --timeout seconds with one `error:` line."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        result = evoforge("submit", spec, "--address", address, "--timeout", "1.5", "--wait", timeout=120)
        seconds = time.monotonic() - start
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: --address: the Ray job server at {address} did not answer within 1.5 s while "
                     "connecting; check that the head node is up and not overloaded, or raise --timeout"]
    assert seconds < 60  # interpreter and Ray import included; the wait itself is 1.5 s
