"""The Ray backend: the same `Evaluator` interface, evaluations spread over Ray worker processes.

Embedded by default: `ray.init()` starts a private local Ray with `workers` CPUs. With `address` (or RAY_ADDRESS)
it joins an existing cluster instead and uses what the cluster has. The objective goes into the object store once
(`ray.put`), not with every task. Genomes travel in chunks so Ray's per-task overhead (about a millisecond) is paid
per chunk rather than per evaluation.

Failure handling, in layers: inside a task each genome has its own SIGALRM timeout (see `guarded_evaluate`); a task
whose worker dies (segfault, OOM kill) is retried `max_retries` times by Ray and then scored as failed; a task
stuck past its whole chunk's time budget (a hang inside C code that ignores the alarm) is force-cancelled, which
kills its worker process, and the chunk is scored as failed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from search.evaluation import Evaluator, evaluate_chunk
from search.protocols import Evaluation, Objective, UserError

# A task whose worker process died is retried this many times before its genomes are scored as failed.
MAX_TASK_RETRIES = 2
# Extra seconds granted to a chunk beyond the sum of its evaluations' timeouts before its worker is killed.
CHUNK_GRACE_SECONDS = 5.0
# A task should carry at least this much work, so Ray's per-task cost (about a millisecond of scheduling and
# transfer) stays a small fraction of it; cheap evaluations are therefore packed into fewer, larger chunks.
MIN_TASK_SECONDS = 0.05


class RayUnavailable(Exception):
    """An embedded Ray could not start (e.g. its node timed out starting on an overloaded machine). The job layer
    then runs in-process, which gives the same front."""


def connect(workers: int, address: str | None = None, runtime_env: dict | None = None) -> bool:
    """Start an embedded Ray with `workers` CPUs, or join `address` (or RAY_ADDRESS); no-op if already connected.

    Returns True when this call started the connection (so its owner should shut it down). A cluster that cannot
    be joined is a `UserError`; an embedded Ray that cannot start raises `RayUnavailable`."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                     runtime_env=runtime_env)
    except Exception as exc:  # ray.init raises bare Exception, ConnectionError, RuntimeError, TimeoutError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if ray.is_initialized():
            ray.shutdown()
        if address:
            raise UserError(f"--address: cannot join the Ray cluster at {address} ({reason}); check the address "
                            "(HOST:6379) and that the cluster is up") from None
        raise RayUnavailable(reason) from None
    return True


def _remote_chunk():
    import ray

    @ray.remote(max_retries=MAX_TASK_RETRIES, retry_exceptions=False)
    def evaluate_remote(objective: Objective, genomes: list[Any], timeout: float | None) -> list[Evaluation]:
        return evaluate_chunk(objective, genomes, timeout)

    return evaluate_remote


class RayEvaluator(Evaluator):
    """Evaluates on Ray workers; results in input order, so runs are identical to in-process ones."""

    def __init__(self, objective: Objective, workers: int = 2, address: str | None = None,
                 timeout: float | None = None, chunks_per_worker: int = 4, runtime_env: dict | None = None,
                 min_task_seconds: float = MIN_TASK_SECONDS):
        import ray

        self.objective = objective
        self.timeout = timeout
        self.chunks_per_worker = chunks_per_worker
        self.min_task_seconds = min_task_seconds
        address = address or os.environ.get("RAY_ADDRESS") or None
        self._started_here = connect(workers, address, runtime_env)
        self.workers = workers if not address else max(1, int(ray.cluster_resources().get("CPU", workers)))
        self._objective_ref = ray.put(objective)
        self._remote = _remote_chunk()
        self._seconds_per_eval: float | None = None  # measured, per evaluation and worker

    def _chunks(self, n: int) -> list[range]:
        """Split n genomes into chunks: up to `chunks_per_worker` per worker for load balance, but no chunk
        lighter than MIN_TASK_SECONDS of measured work (one chunk per worker at least)."""
        count = self.workers * self.chunks_per_worker
        if self._seconds_per_eval is not None and self.min_task_seconds > 0:
            by_work = math.ceil(n * self._seconds_per_eval / self.min_task_seconds)
            count = min(count, self.workers * math.ceil(max(1, by_work) / self.workers))
        count = max(1, min(n, count))
        bounds = [round(i * n / count) for i in range(count + 1)]  # balanced: sizes differ by at most one
        return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def evaluate(self, genomes: Sequence[Any]) -> list[Evaluation]:
        import ray

        if not genomes:
            return []
        n_values, directions = len(self.objective.names), self.objective.directions
        chunks = self._chunks(len(genomes))
        refs = [self._remote.remote(self._objective_ref, [genomes[i] for i in chunk], self.timeout)
                for chunk in chunks]
        deadline = None
        if self.timeout:
            deadline = max(len(c) for c in chunks) * self.timeout + CHUNK_GRACE_SECONDS
        start = time.perf_counter()
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=deadline)
        busy = min(self.workers, len(chunks))
        self._seconds_per_eval = (time.perf_counter() - start) * busy / len(genomes)
        results: list[Evaluation | None] = [None] * len(genomes)
        for ref, chunk in zip(refs, chunks):
            if ref in pending:
                ray.cancel(ref, force=True)
                reasons = [f"worker killed: chunk ran past {deadline:g} s"] * len(chunk)
                outcome = [Evaluation.failure(r, n_values, directions) for r in reasons]
            else:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # worker died past its retries, or the task could not run
                    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    outcome = [Evaluation.failure(reason, n_values, directions) for _ in chunk]
            for i, evaluation in zip(chunk, outcome):
                results[i] = evaluation
        return results  # type: ignore[return-value]

    def close(self) -> None:
        import ray

        if self._started_here and ray.is_initialized():
            ray.shutdown()
