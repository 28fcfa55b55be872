"""The static validator against ground truth on adversarial megakernel schedules.

Base schedules: every real lowering of 3 tiny Llama configs x 3 tilings x 3 synchronisation styles (barrier, join,
tile counters) x RMSNorm separate or fused into its consumers: 54 lowerings; plus the streaming lowering of the
same configs with 6 settings of its schedule-changing genes (workers, attention chunks, tiles per worker, the
fused MLP whose tiles accumulate into one residual accumulator): 18. Adversarial schedules: one-edit mutations of those (spaces/megakernel/adversarial.py), labelled
unsafe/safe by the explicit-state explorer (spaces/megakernel/explorer.py). The peer is the explorer itself: the
validator must agree with it on every unsafe schedule (false accepts = 0) and should agree on safe ones (false
rejects are the price of a static check). Paper (AutoMegaKernel): 7,160 schedules, 6,091 unsafe, 0 false accepts,
360/360 real lowerings accepted.

    python bench/validator_adversarial.py [--schedules 7200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.schedule_validator import validate  # noqa: E402
from spaces.megakernel.adversarial import MUTATIONS  # noqa: E402
from spaces.megakernel.explorer import StateLimit, explore  # noqa: E402
from spaces.megakernel.ir import structure_errors  # noqa: E402
from spaces.megakernel.lower import SYNC_MODES, LlamaShape, Tiling, lower  # noqa: E402
from spaces.megakernel.stream import KernelGenes, stream_schedule  # noqa: E402

CONFIGS = {
    "h16-l1-gqa": LlamaShape(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                             num_key_value_heads=1, vocab_size=32, max_position_embeddings=4),
    "h16-l2-mha": LlamaShape(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                             num_key_value_heads=2, vocab_size=16, max_position_embeddings=4),
    "h24-l1-gqa4": LlamaShape(hidden_size=24, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
                              num_key_value_heads=2, vocab_size=24, max_position_embeddings=4),
}
# streaming lowerings (spaces/megakernel/stream.py) with the schedule-changing genes: (SMs, genes)
STREAM_GENES = [(2, KernelGenes(chunks=1)), (3, KernelGenes(chunks=2)), (2, KernelGenes(chunks=2, tiles=2)),
                (2, KernelGenes(blocks_per_sm=2, chunks=4)),
                # the fused MLP: tiles accumulate (commuting +=) into the residual accumulator
                (2, KernelGenes(chunks=2, fuse_mlp=1)), (3, KernelGenes(chunks=1, tiles=2, fuse_mlp=1)),
                (2, KernelGenes(chunks=2, fuse_mlp=1, split_o=1)), (3, KernelGenes(chunks=2, split_o=1))]
TILINGS = {
    "r8-h1-w2": Tiling(rows=8, heads=1, workers=2),
    "r8-h2-w3": Tiling(rows=8, heads=2, workers=3),
    "r16-h1-w4": Tiling(rows=16, heads=1, workers=4),
}


def compound(s, rng):
    """Two or three edits of random classes on one schedule (harder, mixed failures)."""
    names = sorted(MUTATIONS)
    for _ in range(int(rng.integers(2, 4))):
        s = MUTATIONS[names[int(rng.integers(len(names)))]](s, rng) or s
    return s


CLASSES = {**MUTATIONS, "compound": compound}


def explorer_rules(e) -> set[str]:
    return ({"deadlock"} if e.deadlock else set()) | ({"race"} if e.races else set()) | \
           ({"order"} if e.order else set()) | ({"clobber"} if e.clobbers else set())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=7200, help="adversarial schedules to generate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "validator_adversarial.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    bases = {(c, t, s, f): lower(cfg, til, s, f) for c, cfg in CONFIGS.items() for t, til in TILINGS.items()
             for s in SYNC_MODES for f in (False, True)}
    for c, cfg in CONFIGS.items():
        for sms, g in STREAM_GENES:
            try:
                bases[("stream", c, sms, str(g))] = stream_schedule(cfg, g, sms=sms, kv_length=cfg.max_position_embeddings)
            except ValueError:   # genes this shape cannot lower (split_o needs a power-of-two group width)
                continue
    unmutated_accepted = 0
    unmutated_safe = 0
    for sched in bases.values():
        unmutated_accepted += validate(sched).accepted
        unmutated_safe += not explore(sched).unsafe
    classes = {k: dict(total=0, unsafe=0, safe=0, false_accepts=0, false_rejects=0, not_applicable=0, state_limit=0)
               for k in CLASSES}
    rule_agreement = dict(deadlock=[0, 0], race_or_order=[0, 0])  # [explorer says yes, validator also says yes]
    keys = list(bases)
    names = list(CLASSES)
    total = unsafe = false_accepts = false_rejects = 0
    times = {"validator": 0.0, "explorer": 0.0}
    examples = []
    i = 0
    while total < args.schedules:
        kind = names[i % len(names)]
        i += 1
        base = bases[keys[int(rng.integers(len(keys)))]]
        sched = CLASSES[kind](base, rng)
        c = classes[kind]
        if sched is None or structure_errors(sched):
            c["not_applicable"] += 1
            continue
        t = time.perf_counter()
        try:
            truth = explore(sched)
        except StateLimit:
            c["state_limit"] += 1
            continue
        times["explorer"] += time.perf_counter() - t
        t = time.perf_counter()
        verdict = validate(sched)
        times["validator"] += time.perf_counter() - t
        total += 1
        c["total"] += 1
        bad = truth.unsafe
        unsafe += bad
        c["unsafe" if bad else "safe"] += 1
        if bad and verdict.accepted:
            false_accepts += 1
            c["false_accepts"] += 1
            examples.append({"class": kind, "explorer": sorted(explorer_rules(truth))})
        if not bad and not verdict.accepted:
            false_rejects += 1
            c["false_rejects"] += 1
        er, vr = explorer_rules(truth), verdict.rules
        if "deadlock" in er:
            rule_agreement["deadlock"][0] += 1
            rule_agreement["deadlock"][1] += bool(vr & {"deadlock", "barrier-count", "capacity"})
        if er & {"race", "order"} and "deadlock" not in er:
            rule_agreement["race_or_order"][0] += 1
            rule_agreement["race_or_order"][1] += bool(vr & {"race", "order"})
    seconds = time.perf_counter() - t0
    result = {
        "total": total, "unsafe": unsafe, "safe": total - unsafe, "false_accepts": false_accepts,
        "false_rejects": false_rejects, "unmutated_accepted": unmutated_accepted, "unmutated_total": len(bases),
        "unmutated_explorer_safe": unmutated_safe, "configs": list(CONFIGS), "tilings": list(TILINGS),
        "sync_modes": list(SYNC_MODES), "per_class": classes,
        "rule_agreement": {k: {"explorer": v[0], "validator_same_rule": v[1]} for k, v in rule_agreement.items()},
        "mean_ms": {k: 1e3 * v / max(total, 1) for k, v in times.items()},
        "seconds": seconds, "seed": args.seed, "false_accept_examples": examples[:10],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{'class':<18}{'total':>7}{'unsafe':>8}{'safe':>6}{'FA':>5}{'FR':>5}{'n/a':>6}")
    for k, c in classes.items():
        print(f"{k:<18}{c['total']:>7}{c['unsafe']:>8}{c['safe']:>6}{c['false_accepts']:>5}{c['false_rejects']:>5}"
              f"{c['not_applicable']:>6}")
    print(f"{'all':<18}{total:>7}{unsafe:>8}{total - unsafe:>6}{false_accepts:>5}{false_rejects:>5}")
    print(f"unmutated lowerings accepted: {unmutated_accepted}/{len(bases)} (explorer-safe {unmutated_safe})")
    print(f"mean time per schedule: validator {result['mean_ms']['validator']:.2f} ms, "
          f"explorer {result['mean_ms']['explorer']:.2f} ms; total {seconds:.0f} s")


if __name__ == "__main__":
    main()
