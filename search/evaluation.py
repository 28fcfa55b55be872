"""Evaluation backends behind one interface, and the guarded call that turns raises and hangs into failed scores.

A backend takes a list of genomes and returns one `Evaluation` per genome, in order, whatever happened: an
exception, a timeout or a lost worker become `Evaluation.failure(reason)`. The engine never sees an exception from
an evaluation, so one bad program cannot stop a run.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from search.protocols import Evaluation, Objective


class EvaluationTimeout(Exception):
    """Raised inside an evaluation that ran past its time limit."""


def normalise(result: Any, objective: Objective) -> Evaluation:
    """Accept an `Evaluation` or a bare sequence of values; reject wrong lengths and NaN as failures."""
    n = len(objective.names)
    if not isinstance(result, Evaluation):
        result = Evaluation(values=tuple(float(v) for v in result))
    if result.failed is not None:
        return Evaluation.failure(result.failed, n, objective.directions) if len(result.values) != n else result
    if len(result.values) != n:
        return Evaluation.failure(f"returned {len(result.values)} values for {n} objectives {objective.names}", n,
                                  objective.directions)
    if len(result.violations) != len(objective.constraints):
        return Evaluation.failure(f"returned {len(result.violations)} violations for constraints "
                                  f"{objective.constraints}", n, objective.directions)
    values = tuple(float(v) for v in result.values)
    if any(math.isnan(v) for v in values):
        return Evaluation.failure(f"objective value is NaN: {values}", n, objective.directions)
    return Evaluation(values=values, violations=tuple(float(v) for v in result.violations), extras=result.extras)


def _raise_timeout(signum, frame):
    raise EvaluationTimeout()


def guarded_evaluate(objective: Objective, genome: Any, timeout: float | None) -> Evaluation:
    """Evaluate one genome; an exception or a run past `timeout` seconds gives a failed evaluation with the reason.

    The timeout uses SIGALRM (ITIMER_REAL) when called on the main thread, which interrupts Python code and
    sleeps; code stuck inside one C call is interrupted when that call returns (the Ray backend also kills the
    worker process after a grace period). Off the main thread it falls back to abandoning a daemon thread.
    """
    n, directions = len(objective.names), objective.directions
    start = time.perf_counter()
    try:
        if not timeout:
            result = objective.evaluate(genome)
        elif threading.current_thread() is threading.main_thread():
            result = _evaluate_with_alarm(objective, genome, timeout)
        else:
            result = _evaluate_in_thread(objective, genome, timeout)
    except EvaluationTimeout:
        return Evaluation.failure(f"timeout after {timeout:g} s", n, directions)
    except Exception as exc:  # the evaluation's own bug: score it failed, keep the run alive
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Evaluation.failure(f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})", n, directions)
    evaluation = normalise(result, objective)
    if timeout and time.perf_counter() - start > timeout and evaluation.failed is None:
        return Evaluation.failure(f"timeout after {timeout:g} s", n, directions)
    return evaluation


def _evaluate_with_alarm(objective: Objective, genome: Any, timeout: float) -> Any:
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return objective.evaluate(genome)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _evaluate_in_thread(objective: Objective, genome: Any, timeout: float) -> Any:
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = objective.evaluate(genome)
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise EvaluationTimeout()
    if "error" in box:
        raise box["error"]
    return box["result"]


def evaluate_chunk(objective: Objective, genomes: Sequence[Any], timeout: float | None) -> list[Evaluation]:
    """Evaluate genomes one by one with a per-evaluation timeout; the unit of work a backend ships to a worker."""
    if not timeout:
        try:
            results = objective.evaluate_batch(list(genomes))
        except Exception:  # fall back to one at a time to find which genome failed
            return [guarded_evaluate(objective, g, None) for g in genomes]
        return [normalise(r, objective) for r in results]
    return [guarded_evaluate(objective, g, timeout) for g in genomes]


class Evaluator(ABC):
    """A backend: evaluates genomes for one objective. Results come back in input order."""

    workers: int = 1

    @abstractmethod
    def evaluate(self, genomes: Sequence[Any]) -> list[Evaluation]:
        """One `Evaluation` per genome, failures included."""

    def close(self) -> None:
        """Release processes or connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalEvaluator(Evaluator):
    """In-process, one genome after another. The reference for determinism and the cheapest for fast objectives."""

    def __init__(self, objective: Objective, timeout: float | None = None):
        self.objective = objective
        self.timeout = timeout

    def evaluate(self, genomes: Sequence[Any]) -> list[Evaluation]:
        return evaluate_chunk(self.objective, genomes, self.timeout)
