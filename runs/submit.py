"""`evoforge submit`: hand a run to a Ray cluster as a Ray job, so it outlives the laptop that submitted it.

The spec is validated here first (a typo fails on the laptop, not an hour later on the cluster). The job ships
the four evoforge packages as `py_modules` and a staging folder holding the resolved spec (and its CSV, if any)
as `working_dir`, so the cluster needs only Ray and evoforge's dependencies, not a checkout. The run directory is
written on the cluster's head node, under `~/evoforge-runs/` unless `--out` says otherwise.
Needs the cluster's job server (the dashboard, `ray[default]`), at http://HEAD:8265 by default.
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


def stage(spec: RunSpec, folder: Path) -> Path:
    """Write the job's working_dir: spec.toml with its data file copied beside it."""
    table = dict(spec.table)
    if spec.data is not None:
        shutil.copy(spec.data.path, folder / "data.csv")
        table["data"] = {"path": "data.csv", "target": spec.data.target}
    backend = dict(table.get("backend", {}))
    backend.pop("address", None)  # inside the job, RAY_ADDRESS points at the cluster it runs on
    backend["kind"] = "ray"
    table["backend"] = backend
    (folder / "spec.toml").write_text(tomli_w.dumps(table))
    return folder


def submit(spec: RunSpec, address: str, out: str | None, wait: bool, log=print) -> tuple[str, str]:
    """Submit the run; returns (job id, final status or 'PENDING'). With `wait`, streams the job's log until done."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise UserError("submit: Ray's job client is missing; install it with pip install 'ray[default]'") from None
    run_dir = out or f"$HOME/evoforge-runs/{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        client = JobSubmissionClient(address)
    except Exception as exc:  # connection refused, no job server, bad URL
        raise UserError(f"--address: cannot reach a Ray job server at {address} ({str(exc).splitlines()[0]}); "
                        "start the head with the dashboard (ray start --head) and pass http://HEAD:8265") from None
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
            except RuntimeError as exc:  # a head that just started has no job agent yet
                if "No available agent" not in str(exc) or attempt == AGENT_WAIT_SECONDS - 1:
                    raise UserError(f"submit: the cluster refused the job ({str(exc).splitlines()[0]})") from None
                time.sleep(1.0)
    log(f"submitted job {job_id}; run directory on the cluster: {run_dir}")
    log(f"follow it with: ray job logs --address {address} --follow {job_id}")
    if not wait:
        return job_id, "PENDING"
    status = None
    while True:
        status = client.get_job_status(job_id)
        if status.is_terminal():
            break
        time.sleep(1.0)
    log(client.get_job_logs(job_id).rstrip())
    return job_id, str(status.value if hasattr(status, "value") else status)
