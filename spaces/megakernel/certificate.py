"""The megakernel space's certifier: the schedule's validator verdict, its execution by real CPU threads against
the plain forward pass, and, when its state space is small enough to enumerate, the explorer's ground-truth
verdict (every interleaving) agreeing with the validator. A CUDA artifact carries its schedule in the certificate
and is checked to be exactly the kernel `emit_cuda` writes for it (the kernel itself needs a GPU to run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from runs.certificate import Check, Outcome, run_check
from spaces.megakernel.ir import Schedule, from_dict, load_schedule, to_dict

TOOLS = ()
EXPLORER_STATES = 20_000    # the explorer's state budget; larger schedules are certified by the validator alone
DECODE_STEPS = 3            # decode steps the executor runs (positions 0, 1, 2)
TOLERANCE = 1e-4            # max |logit difference| between the threaded execution and the forward pass


def _schedule(artifact: Path, params: dict[str, Any]) -> Schedule:
    """The schedule under test: embedded in the certificate (CUDA artifacts) or the artifact itself (JSON)."""
    return from_dict(params["schedule"]) if "schedule" in params else load_schedule(artifact)


def validator(artifact: Path, params: dict[str, Any]) -> Outcome:
    from objectives.schedule_validator import validate

    s = _schedule(artifact, params)
    verdict = validate(s)
    detail = "ACCEPT: deadlock- and race-free" if verdict.accepted else verdict.report(limit=3).replace("\n", "; ")
    return Outcome(verdict.accepted, {"accepted": verdict.accepted, "rules": sorted(verdict.rules)},
                   f"{detail} ({len(s.tasks)} tasks on {s.workers} workers)")


def executor(artifact: Path, params: dict[str, Any]) -> Outcome:
    """Real threads run the schedule for a few decode steps on seeded random weights; the logits must match the
    op-by-op forward pass (spaces/megakernel/model.py)."""
    from spaces.megakernel.executor import ExecutionHang, Memory, execute
    from spaces.megakernel.lower import ModelDims
    from spaces.megakernel.model import new_cache, random_weights, reference_step

    s = _schedule(artifact, params)
    dims = ModelDims(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.meta["dims"].items()})
    weights = random_weights(dims, np.random.default_rng(int(params["seed"])))
    mem, cache, worst = Memory.allocate(s, weights), new_cache(dims), 0.0
    try:
        for pos, token in enumerate(params["tokens"]):
            got = execute(s, mem, dims, int(token), pos, timeout=float(params.get("timeout", 10.0)))
            want = reference_step(weights, dims, int(token), pos, cache)
            worst = max(worst, float(np.nan_to_num(np.abs(got - want), nan=np.inf).max()))
    except ExecutionHang as exc:
        return Outcome(False, {"hang": str(exc)}, f"the threaded execution hung: {exc}")
    passed = worst <= float(params["tolerance"])
    return Outcome(passed, {"max_abs_error": worst if np.isfinite(worst) else None},
                   f"max |logit error| {worst:.3g} (bound {params['tolerance']:g}) over {len(params['tokens'])} "
                   "decode steps against the forward pass")


def explorer(artifact: Path, params: dict[str, Any]) -> Outcome:
    """Every interleaving (partial-order reduced) explored: no deadlock, race, order error or clobber, which is
    what the validator's ACCEPT claims."""
    from spaces.megakernel.explorer import StateLimit, explore

    s = _schedule(artifact, params)
    try:
        e = explore(s, max_states=int(params["max_states"]))
    except StateLimit:
        return Outcome(False, {"states": None}, f"more than {params['max_states']} states: no ground-truth verdict")
    found = {"deadlock": e.deadlock, "races": sorted(map(list, e.races)), "order": sorted(map(list, e.order)),
             "clobbers": sorted(e.clobbers)}
    return Outcome(not e.unsafe, {"states": e.states, **found},
                   f"{e.states} states explored: " + ("safe under every interleaving, agreeing with the validator"
                                                      if not e.unsafe else f"unsafe ({json.dumps(found)[:120]})"))


def cuda_source(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The CUDA file is exactly the kernel evoforge writes for the certified schedule."""
    from spaces.megakernel.emit_cuda import emit_cuda

    expected = emit_cuda(from_dict(params["schedule"]))
    same = artifact.read_text() == expected
    return Outcome(same, {"chars": len(expected)}, "the kernel is emit_cuda of the certified schedule" if same
                   else "the kernel differs from emit_cuda of the certified schedule")


def certify(space, genome, lang: str, source: str, artifact: Path) -> list[Check]:
    s = space.schedule(genome)
    rng = np.random.default_rng(space.context.seed)
    vocab = int(s.meta["dims"]["vocab"])
    embedded = {"schedule": to_dict(s)} if lang == "cuda" else {}
    checks = [run_check("megakernel.validator", "the schedule is deadlock- and race-free",
                        "the static validator (objectives/schedule_validator.py)", dict(embedded), artifact)]
    exploration = run_check("megakernel.explorer", "no interleaving deadlocks, races or clobbers memory",
                            f"explicit-state exploration of every interleaving (spaces/megakernel/explorer.py), at "
                            f"most {EXPLORER_STATES} states", {**embedded, "max_states": EXPLORER_STATES}, artifact)
    if exploration.result.get("states") is not None:   # too large to enumerate: the validator stands alone
        checks.append(exploration)
    checks.append(run_check("megakernel.executor", "the schedule computes the model's forward pass",
                            f"one CPU thread per worker runs {DECODE_STEPS} decode steps on seeded random weights; "
                            "logits compared with the op-by-op forward pass (spaces/megakernel/model.py)",
                            {**embedded, "seed": space.context.seed, "tolerance": TOLERANCE,
                             "tokens": [int(t) for t in rng.integers(vocab, size=DECODE_STEPS)]}, artifact))
    if lang == "cuda":
        checks.append(run_check("megakernel.cuda_source", "the kernel is the certified schedule's kernel",
                                "emit_cuda(schedule) compared with the file; the kernel needs a GPU to run",
                                dict(embedded), artifact))
    return checks
