"""Space methods called so that one genome cannot crash or stall a run.

The evaluation backends already turn a raising or hanging `Objective.evaluate` into a failed score. The space's own
methods (`key`, `describe`, `mutate`, `crossover`, `random`, `initial`) run in the engine, and one bad genome there
(sympy printing a 10^400 constant, simplifying a pathological tree) used to end the whole run. Here every such
call is made through `GuardedSpace`:

- an exception becomes a reason string: a genome whose `key` raises is a failed individual (logged in
  failures.jsonl with that reason); a variation operator that raises is retried on other parents and counted;
- a call that runs past `seconds` (wall clock, SIGALRM on the main thread) is interrupted and treated the same.
  Spaces bound their own work deterministically (size and digit limits); the time limit is the backstop for what
  they missed, so it should never fire in a healthy run (when it does, the run is no longer a function of the
  seed alone, since a loaded machine times out sooner);
- a generation in which the space fails on most genomes raises `SpaceBroken`, a `UserError`: the CLI prints it as
  one `error:` line instead of a traceback.

Off the main thread (a threaded Ray actor) there is no time limit, only the exception guard.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable, Hashable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.protocols import Space, UserError

#: attempts at one child before it is left a copy of its first parent
VARIATION_TRIES = 8
#: characters of a reason or a fallback description kept in logs
REASON_CHARS = 300


class SpaceCallFailed(Exception):
    """A space method raised or ran out of time on one genome; `reason` says which and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SpaceBroken(UserError):
    """The space failed on most genomes of a generation: a bug or a bad configuration, not one bad genome."""


class _OutOfTime(BaseException):  # BaseException: a space's own `except Exception` must not swallow it
    pass


def _raise_out_of_time(signum, frame):
    raise _OutOfTime()


@contextmanager
def time_limit(seconds: float | None):
    """Interrupt the block after `seconds` of wall time with `_OutOfTime` (main thread only; else no limit).

    An outer timer already running (an evaluation's own) is restored afterwards with its remaining time.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    start = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, _raise_out_of_time)
    outer_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _OutOfTime:  # the alarm fired between the block's end and this line: the block did finish
            signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if outer_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, outer_delay - (time.monotonic() - start)))


def _reason(method: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = f"space.{method} raised {type(exc).__name__}: {exc}"
    if len(text) > REASON_CHARS:
        text = text[:REASON_CHARS] + "..."
    return text + where


def call_space(method: str, fn: Callable[..., Any], *args: Any, seconds: float | None) -> Any:
    """fn(*args) within `seconds`; any exception or the time limit becomes `SpaceCallFailed` with the reason."""
    try:
        with time_limit(seconds):
            return fn(*args)
    except _OutOfTime:
        raise SpaceCallFailed(f"space.{method} took longer than {seconds:g} s") from None
    except Exception as exc:  # noqa: BLE001 - the space's bug on one genome, not the run's
        raise SpaceCallFailed(_reason(method, exc)) from exc


def _fallback_text(genome: Any) -> str:
    try:
        text = repr(genome)
    except Exception:  # noqa: BLE001 - repr of a broken genome may raise too
        text = f"<{type(genome).__name__}>"
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "..."


@dataclass
class GenerationFaults:
    """Space failures of one generation: (reason, genome) per failed call, and the variation retries they cost.
    `genome` is the one the call was made on (the first parent for a variation operator, None for `random`)."""

    calls: int = 0
    failures: list[tuple[str, Any]] = field(default_factory=list)
    variation_retries: int = 0

    @property
    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.failures]

    def check(self, space: Space, generation: int) -> None:
        """Raise `SpaceBroken` when more than half of this generation's space calls failed (at least 4)."""
        failed = len(self.reasons)
        if failed >= 4 and failed > self.calls / 2:
            raise SpaceBroken(
                f"space {type(space).__name__}: {failed} of {self.calls} calls failed in generation {generation} "
                f"(first: {self.reasons[0]}); the space or its [space] settings are broken, not one genome")


class GuardedSpace:
    """A `Space` whose methods never raise into the engine and never run longer than `seconds` each."""

    def __init__(self, space: Space, seconds: float | None):
        self.space = space
        self.seconds = seconds

    def key(self, genome: Any, faults: GenerationFaults) -> tuple[Hashable, str | None]:
        """(canonical key, None), or (a fallback key, reason) when `key` failed or gave an unhashable value."""
        faults.calls += 1
        try:
            k = call_space("key", self.space.key, genome, seconds=self.seconds)
            hash(k)
            return k, None
        except SpaceCallFailed as exc:
            reason = exc.reason
        except TypeError as exc:
            reason = f"space.key returned an unhashable value: {exc}"
        faults.failures.append((reason, genome))
        return f"<no key: {_fallback_text(genome)}>", reason

    def describe(self, genome: Any, seconds: float | None = None) -> str:
        """`describe`, or the genome's repr with the reason when it failed (used in logs, so it cannot raise)."""
        limit = self.seconds if seconds is None else seconds
        try:
            text = call_space("describe", self.space.describe, genome, seconds=limit)
            return text if isinstance(text, str) else str(text)
        except SpaceCallFailed as exc:
            return f"{_fallback_text(genome)} [{exc.reason}]"

    def initial(self, rng: np.random.Generator, size: int, faults: GenerationFaults) -> list[Any]:
        """The space's first population; if `initial` fails, `random` genome by genome (a failing one is retried)."""
        faults.calls += 1
        try:
            genomes = call_space("initial", self.space.initial, rng, size,
                                 seconds=self.seconds * max(1, size) if self.seconds else None)
            return list(genomes)
        except SpaceCallFailed as exc:
            faults.failures.append((exc.reason, None))
        genomes = []
        for _ in range(size):
            for _ in range(VARIATION_TRIES):
                faults.calls += 1
                try:
                    genomes.append(call_space("random", self.space.random, rng, seconds=self.seconds))
                    break
                except SpaceCallFailed as exc:
                    faults.failures.append((exc.reason, None))
        return genomes

    def vary(self, a: Any, b: Any, operator: str, rng: np.random.Generator) -> Any:
        """One child of `a` (and `b`) by "crossover" or "mutate"; raises `SpaceCallFailed` when the operator fails."""
        if operator == "crossover":
            children = call_space("crossover", self.space.crossover, a, b, rng, seconds=self.seconds)
            return children[0]
        return call_space("mutate", self.space.mutate, a, rng, seconds=self.seconds)

    def child(self, pairs: Sequence[tuple[Any, Any]], i: int, operator: str, rng: np.random.Generator,
              faults: GenerationFaults) -> Any:
        """Child `i` from pair `i`; if the operator fails, again on pairs drawn at random (`rng`), counted in
        `faults`. After `VARIATION_TRIES` failures the child is a copy of pair i's first parent.

        The random stream is touched only on a failure, so a run without failures draws what it always drew.
        """
        a, b = pairs[i]
        for attempt in range(VARIATION_TRIES):
            faults.calls += 1
            try:
                return self.vary(a, b, operator, rng)
            except SpaceCallFailed as exc:
                faults.failures.append((exc.reason, a))
                faults.variation_retries += 1
                if attempt + 1 < VARIATION_TRIES:
                    a, b = pairs[int(rng.integers(len(pairs)))]
        return pairs[i][0]
