"""Evaluations that run on hardware: Ray actors that hold a device, each timing one genome at a time.

A measured objective declares what one evaluation needs (`Objective.resources`, e.g. `{"num_gpus": 1}` or
`{"resources": {"timing_core": 1}}`). This evaluator starts as many actors as the cluster can hold at once
(at most `devices`), each pinned to its share of those resources, so two measurements never share a device and
disturb each other. An actor that raises or times out inside Python gives a failed evaluation (the same guarded
call as every backend); one stuck past `timeout + grace` in C or on the device is killed and replaced, and its
genome is scored as failed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from search.evaluation import Evaluator, evaluate_chunk, guarded_evaluate
from search.protocols import Evaluation, Objective, UserError

# Seconds past an evaluation's own timeout before its actor is killed (an actor's start-up counts against it).
ACTOR_GRACE_SECONDS = 10.0
RESOURCE_KEYS = ("num_gpus", "num_cpus", "resources")


def actor_options(resources: dict[str, Any]) -> dict[str, Any]:
    """Ray actor options for an objective's `resources`; a measuring actor reserves no CPU unless it asks for one
    (its device, or a custom `timing_core`, is what it must not share)."""
    unknown = sorted(set(resources) - set(RESOURCE_KEYS))
    if unknown:
        raise UserError(f"objective resources: unknown key {unknown[0]!r}; allowed: {', '.join(RESOURCE_KEYS)}")
    options: dict[str, Any] = {"num_cpus": float(resources.get("num_cpus", 0))}
    if resources.get("num_gpus"):
        options["num_gpus"] = float(resources["num_gpus"])
    if resources.get("resources"):
        options["resources"] = {k: float(v) for k, v in resources["resources"].items()}
    return options


def demand(resources: dict[str, Any]) -> dict[str, float]:
    """One evaluation's resources in the names `ray.cluster_resources()` uses (GPU, CPU, custom names)."""
    flat = {"GPU": float(resources.get("num_gpus", 0)), "CPU": float(resources.get("num_cpus", 0))}
    flat.update({k: float(v) for k, v in resources.get("resources", {}).items()})
    return {k: v for k, v in flat.items() if v > 0}


def slots(cluster: dict[str, float], need: dict[str, float]) -> int:
    """How many evaluations needing `need` the cluster can run at once."""
    if not need:
        return int(cluster.get("CPU", 1))
    return min(int(math.floor(cluster.get(k, 0.0) / v + 1e-9)) for k, v in need.items())


def embedded_resources(resources: dict[str, Any], workers: int, devices: int) -> tuple[int, dict[str, float]]:
    """(CPUs, custom resources) of an embedded Ray for `devices` measuring actors beside `workers` cheap-stage
    workers: the CPUs the actors hold come on top, so the cheap stage keeps its `workers`."""
    custom = {k: float(v) * devices for k, v in resources.get("resources", {}).items()}
    return workers + math.ceil(float(resources.get("num_cpus", 0)) * devices), custom


def connect_for(objective: Objective, workers: int, devices: int, address: str | None = None,
                runtime_env: dict | None = None) -> bool:
    """Join `address` (or RAY_ADDRESS), or start an embedded Ray with `workers` CPUs (plus those the measuring
    actors hold) and `devices` of each custom resource the objective names (a local machine has no `timing_core`
    until someone declares it; GPUs are detected by Ray). No-op when Ray is already up. Returns True when this call
    started Ray."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=False)
    else:
        cpus, custom = embedded_resources(objective.resources, workers, devices)
        ray.init(num_cpus=cpus, resources=custom or None, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False, runtime_env=runtime_env)
    return True


def _actor_class():
    import ray

    @ray.remote(max_restarts=0, max_concurrency=1)
    class MeasuringActor:
        """Holds one device's share of resources and the objective; measures one genome per call."""

        def __init__(self, objective: Objective):
            self.objective = objective

        def evaluate(self, genome: Any, timeout: float | None) -> Evaluation:
            return guarded_evaluate(self.objective, genome, timeout)

        def evaluate_chunk(self, genomes: list[Any]) -> list[Evaluation]:
            """No time limit: the whole chunk through `evaluate_batch` (e.g. compile in parallel, then time one
            at a time), one genome at a time if the batch raises."""
            return evaluate_chunk(self.objective, genomes, None)

        def placement(self) -> dict[str, Any]:
            """Where this actor runs and what Ray assigned it (for tests and logs)."""
            context = ray.get_runtime_context()
            return {"node_id": context.get_node_id(), "pid": os.getpid(),
                    "assigned": {k: v for k, v in context.get_assigned_resources().items()},
                    "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

    return MeasuringActor


class HardwareEvaluator(Evaluator):
    """Evaluates a measured objective on actors holding its resources; results in input order.

    devices: the most actors to start (the cluster may hold fewer). timeout: seconds per evaluation; with one,
    each genome is its own call (a stuck one is killed alone), without one (None or 0) each actor gets one chunk
    through the objective's `evaluate_batch` (e.g. compile a batch in parallel, then time one kernel at a time).
    grace: seconds past `timeout` before a stuck actor is killed. Measurements are reproducible only
    within timing noise; everything else about the run is not affected.
    """

    def __init__(self, objective: Objective, devices: int = 1, timeout: float | None = None,
                 workers: int = 1, address: str | None = None, runtime_env: dict | None = None,
                 grace: float = ACTOR_GRACE_SECONDS):
        import ray

        if devices < 1:
            raise UserError(f"stages.devices: must be a positive integer, got {devices}")
        self.objective = objective
        self.timeout = timeout
        self.grace = grace
        self._options = actor_options(objective.resources)
        self._started_here = connect_for(objective, workers, devices, address, runtime_env)
        need = demand(objective.resources)
        fit = slots(ray.cluster_resources(), need)
        if fit < 1:
            have = {k: ray.cluster_resources().get(k, 0) for k in need}
            raise UserError(f"objective {'/'.join(objective.names)}: one evaluation needs {need} but the Ray "
                            f"cluster has {have}; start Ray with those resources (e.g. ray start --resources "
                            "'{\"timing_core\": 1}') or run on a machine that has them")
        self.workers = min(devices, fit)
        self._objective_ref = ray.put(objective)
        self._actor_cls = _actor_class()
        self._starting: dict[int, Any] = {}  # slot -> ref that completes once that actor is up
        self._actors = [self._new_actor(slot) for slot in range(self.workers)]

    def _new_actor(self, slot: int):
        actor = self._actor_cls.options(**self._options).remote(self._objective_ref)
        self._starting[slot] = actor.placement.remote()
        return actor

    def _started(self, slot: int) -> bool:
        """Whether the actor in `slot` is up; a timeout only counts from then (start-up is not measurement)."""
        import ray

        ref = self._starting.get(slot)
        if ref is not None and ray.wait([ref], timeout=0)[0]:
            del self._starting[slot]
        return slot not in self._starting

    def placements(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([a.placement.remote() for a in self._actors])

    def evaluate(self, genomes: Sequence[Any]) -> list[Evaluation]:
        if not genomes:
            return []
        if not self.timeout:
            return self._evaluate_chunks(genomes)
        return self._evaluate_each(genomes)

    def _evaluate_chunks(self, genomes: Sequence[Any]) -> list[Evaluation]:
        """Without a timeout: one balanced chunk per actor, through the objective's `evaluate_batch`."""
        import ray

        n = len(genomes)
        count = min(n, len(self._actors))
        bounds = [round(i * n / count) for i in range(count + 1)]
        refs = [self._actors[k].evaluate_chunk.remote(list(genomes[a:b]))
                for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        results: list[Evaluation] = []
        for k, (ref, (a, b)) in enumerate(zip(refs, zip(bounds[:-1], bounds[1:]))):
            try:
                results += ray.get(ref)
            except Exception as exc:  # the actor died: its chunk fails, a new actor takes its place
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                results += [Evaluation.failure(f"measuring actor died: {reason}", len(self.objective.names),
                                               self.objective.directions)] * (b - a)
                self._actors[k] = self._new_actor(k)
        return results

    def _evaluate_each(self, genomes: Sequence[Any]) -> list[Evaluation]:
        """With a timeout: one genome per call, so a stuck measurement can be killed without losing others."""
        import ray

        n_values, directions = len(self.objective.names), self.objective.directions
        results: list[Evaluation | None] = [None] * len(genomes)
        queue = list(range(len(genomes)))[::-1]
        running: dict[Any, tuple[int, int, float]] = {}  # ref -> (genome index, actor slot, start time)
        limit = (self.timeout + self.grace) if self.timeout else None
        idle = list(range(len(self._actors)))[::-1]
        while queue or running:
            while queue and idle:
                i, slot = queue.pop(), idle.pop()
                ref = self._actors[slot].evaluate.remote(genomes[i], self.timeout)
                running[ref] = (i, slot, time.monotonic())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0 if limit else None)
            for ref in ready:
                i, slot, _ = running.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except Exception as exc:  # the actor died (segfault, OOM, lost node): replace it
                    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    results[i] = Evaluation.failure(f"measuring actor died: {reason}", n_values, directions)
                    self._actors[slot] = self._new_actor(slot)
                idle.append(slot)
            if limit:
                now = time.monotonic()
                for ref, (i, slot, begun) in list(running.items()):
                    if not self._started(slot):
                        running[ref] = (i, slot, now)
                    elif now - begun > limit:
                        ray.kill(self._actors[slot], no_restart=True)
                        self._actors[slot] = self._new_actor(slot)
                        running.pop(ref)
                        results[i] = Evaluation.failure(f"timeout: measuring actor killed after {limit:g} s",
                                                        n_values, directions)
                        idle.append(slot)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started_here:
            ray.shutdown()
