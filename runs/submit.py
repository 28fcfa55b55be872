"""`evoforge submit`: hand a run to a Ray cluster as a Ray job, so it outlives the laptop that submitted it.

The spec is validated here first (a typo fails on the laptop, not an hour later on the cluster). The job ships
the four evoforge packages as `py_modules` and a staging folder holding the resolved spec (and its CSV, if any)
as `working_dir`, so the cluster needs only Ray and evoforge's dependencies, not a checkout. The run directory is
written on the cluster's head node, under `~/evoforge-runs/` unless `--out` says otherwise.
Needs the cluster's job server (the dashboard, `ray[default]`), at http://HEAD:8265 by default.

Never waits silently: every request to the job server has a time limit (Ray's client has none, so a server that
accepts the connection but stalls, e.g. a dashboard starved on a loaded head node, used to block forever), and
`--wait` prints each change of the job's status and a line every PROGRESS_SECONDS while it stays the same.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import tomli_w

from runs.spec import RunSpec
from search.protocols import UserError

PACKAGES = ("search", "spaces", "objectives", "runs")
REPO_ROOT = Path(__file__).resolve().parents[1]
# A freshly started head node needs a few seconds before its job agent accepts submissions.
AGENT_WAIT_SECONDS = 60
# Seconds one request to the job server may take before the client gives up (the upload of the packages included).
REQUEST_TIMEOUT_SECONDS = 30.0
# While waiting for a job, a line every this many seconds when its status has not changed.
PROGRESS_SECONDS = 30.0
POLL_SECONDS = 1.0


def stage(spec: RunSpec, folder: Path) -> Path:
    """Write the job's working_dir: spec.toml with its data file copied beside it."""
    table = dict(spec.table)
    if spec.data is not None:
        shutil.copy(spec.data.path, folder / "data.csv")
        table["data"] = {"path": "data.csv", "target": spec.data.target}
    backend = dict(table.get("backend", {}))
    backend.pop("address", None)  # inside the job, RAY_ADDRESS points at the cluster it runs on
    backend["kind"] = "ray"
    if backend.get("mode") == "local":  # a job submitted to a cluster runs on it
        backend["mode"] = "auto"
    table["backend"] = backend
    (folder / "spec.toml").write_text(tomli_w.dumps(table))
    return folder


def _client_class():
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise UserError("submit: Ray's job client is missing; install it with pip install 'ray[default]'") from None

    class TimedJobClient(JobSubmissionClient):
        """Ray's job client with a time limit on every HTTP request (it sends them without one)."""

        def __init__(self, address: str, timeout: float):
            self._request_timeout = timeout  # set first: the base constructor already sends requests
            super().__init__(address)

        def _do_request(self, method, endpoint, **kwargs):
            kwargs.setdefault("timeout", self._request_timeout)
            return super()._do_request(method, endpoint, **kwargs)

    return TimedJobClient


def _unanswered(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.Timeout, TimeoutError)) or "timed out" in str(exc).lower()


def _no_answer(address: str, timeout: float, doing: str) -> UserError:
    return UserError(f"--address: the Ray job server at {address} did not answer within {timeout:g} s while "
                     f"{doing}; check that the head node is up and not overloaded, or raise --timeout")


def connect(address: str, timeout: float):
    """A job client for `address` whose every request gives up after `timeout` seconds (one-line UserError)."""
    client_class = _client_class()
    try:
        return client_class(address, timeout)
    except Exception as exc:  # connection refused, no job server, bad URL, no answer
        if _unanswered(exc):
            raise _no_answer(address, timeout, "connecting") from None
        raise UserError(f"--address: cannot reach a Ray job server at {address} ({str(exc).splitlines()[0]}); "
                        "start the head with the dashboard (ray start --head) and pass http://HEAD:8265") from None


def submit(spec: RunSpec, address: str, out: str | None, wait: bool, log=print,
           timeout: float = REQUEST_TIMEOUT_SECONDS) -> tuple[str, str]:
    """Submit the run; returns (job id, final status or 'PENDING'). With `wait`, reports the job's status until it
    ends, then prints its log. `timeout`: seconds each request to the job server may take."""
    if timeout <= 0:
        raise UserError(f"--timeout: must be > 0 seconds, got {timeout:g}")
    run_dir = out or f"$HOME/evoforge-runs/{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    client = connect(address, timeout)
    with tempfile.TemporaryDirectory(prefix="evoforge-submit-") as folder:
        staged = stage(spec, Path(folder))
        for attempt in range(AGENT_WAIT_SECONDS):
            try:
                job_id = client.submit_job(
                    entrypoint=f'python -m runs.cli run spec.toml --out "{run_dir}" --quiet',
                    runtime_env={"working_dir": str(staged), "py_modules": [str(REPO_ROOT / p) for p in PACKAGES]},
                    metadata={"evoforge_spec": spec.name},
                )
                break
            except Exception as exc:
                if _unanswered(exc):
                    raise _no_answer(address, timeout, "submitting the job") from None
                if not isinstance(exc, RuntimeError):
                    raise UserError(f"submit: the job server at {address} failed ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
                # a head that just started has no job agent yet
                if "No available agent" not in str(exc) or attempt == AGENT_WAIT_SECONDS - 1:
                    raise UserError(f"submit: the cluster refused the job ({str(exc).splitlines()[0]})") from None
                time.sleep(1.0)
    log(f"submitted job {job_id}; run directory on the cluster: {run_dir}")
    log(f"follow it with: ray job logs --address {address} --follow {job_id}")
    if not wait:
        return job_id, "PENDING"
    status = _wait(client, job_id, address, timeout, log)
    try:
        log(client.get_job_logs(job_id).rstrip())
    except Exception as exc:
        if _unanswered(exc):
            raise _no_answer(address, timeout, f"fetching the log of job {job_id}") from None
        raise
    return job_id, status


def _wait(client, job_id: str, address: str, timeout: float, log) -> str:
    """Poll the job until it ends, printing each status change and a line every PROGRESS_SECONDS meanwhile."""
    status, since, last_line = None, time.monotonic(), time.monotonic()
    while True:
        try:
            info = client.get_job_info(job_id)
        except Exception as exc:
            if _unanswered(exc):
                raise _no_answer(address, timeout, f"waiting for job {job_id} (last status {status or 'unknown'})"
                                 ) from None
            raise
        current = str(getattr(info.status, "value", info.status))
        now = time.monotonic()
        if current != status:
            status, since, last_line = current, now, now
            log(f"job {job_id}: {status}" + (f" ({info.message})" if info.message else ""))
        elif now - last_line >= PROGRESS_SECONDS:
            last_line = now
            log(f"job {job_id}: still {status} after {now - since:.0f} s" + (f" ({info.message})" if info.message
                                                                              else ""))
        if info.status.is_terminal():
            return status
        time.sleep(POLL_SECONDS)
