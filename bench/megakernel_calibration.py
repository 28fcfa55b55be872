"""How well the megakernel cost model ranks streaming kernels, before and after calibration on measurements
(issue 12's megakernel row of bench/results/search_vs_hand.json).

Random kernel genomes (seeded) of one config are validated, compiled and timed on the GPU (objectives/decode_time);
the proxy is the cost model's makespan (objectives/makespan.py), whose `cost_features` add what the cost model
cannot see (DRAM round trips per SM from the bytes a block keeps in flight, attention positions per task,
signals, poll back-off, prefetch). Spearman rank correlation proxy vs measurement before and after a non-negative
least-squares refit (search/calibration.py), in-sample and 5-fold out-of-sample.

    python bench/megakernel_calibration.py --config hidden-1024 --candidates 60 --out DIR   (GPU: measure)
    python bench/megakernel_calibration.py --measured DIR/megakernel_calibration.json      (CPU: calibrate)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def candidates(space, args) -> list:
    """The genomes to time: the hand-written one, then distinct ones drawn uniformly over the genes, or with --near,
    1 to --flips random single-gene changes of that genome (the neighbourhood a search ends in, where a proxy has
    to rank kernels of similar speed)."""
    from dataclasses import replace

    from spaces.megakernel.stream import KernelGenes

    rng = np.random.default_rng(args.seed)
    base = KernelGenes(**json.loads(args.near)) if args.near else None
    names = list(KernelGenes.CHOICES)
    genomes = [base or space.hand_written()]
    seen = {space.key(genomes[0])}
    while len(genomes) < args.candidates:
        if base is None:
            g = space.random(rng)
        else:
            g = base
            for _ in range(int(rng.integers(1, args.flips + 1))):
                name = names[int(rng.integers(len(names)))]
                choices = KernelGenes.CHOICES[name]
                g = replace(g, **{name: choices[int(rng.integers(len(choices)))]})
        if g.blocks_per_sm * g.warps > args.max_warps_per_sm:   # would not be resident: measured as failed anyway
            continue
        if space.key(g) not in seen:
            seen.add(space.key(g))
            genomes.append(g)
    return genomes


def measure(args, out: Path) -> dict:
    import torch

    from objectives.decode_time import DecodeTime
    from search.protocols import Context
    from spaces.megakernel.stream_space import StreamKernelSpace

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    dtype = "bfloat16" if args.config == "llama-3.2-1b" else "float32"
    space = StreamKernelSpace(StreamKernelSpace.Config(model_config=args.config, kv_length=1024, sms=sms, dtype=dtype),
                              Context())
    genomes = candidates(space, args)
    objective = DecodeTime(DecodeTime.Config(steps=64, repeats=3), space, Context())
    rows = []
    result = {"device": torch.cuda.get_device_name(), "config": args.config, "dtype": dtype, "sms": sms,
              "steps": 64, "repeats": 3,
              "sampling": {"near": json.loads(args.near), "flips": args.flips} if args.near else "uniform",
              "candidates": rows}
    for i in range(0, len(genomes), 8):
        for g, ev in zip(genomes[i:i + 8], objective.evaluate_batch(genomes[i:i + 8])):
            rows.append({"genes": g.as_dict(), "us_per_token": None if ev.failed else ev.values[0], "failed": ev.failed})
        print(f"measured {len(rows)}/{len(genomes)}", flush=True)
        out.write_text(json.dumps(result, indent=1))   # a run cut short keeps what it measured
    return result


def calibrate_measured(measured: dict, seed: int) -> dict:
    from objectives.makespan import Makespan
    from search.calibration import calibrate, feature_matrix
    from search.protocols import Context
    from spaces.megakernel.stream import KernelGenes
    from spaces.megakernel.stream_space import StreamKernelSpace

    space = StreamKernelSpace(StreamKernelSpace.Config(model_config=measured["config"], kv_length=1024,
                                                       sms=measured["sms"], dtype=measured["dtype"]), Context())
    proxy = Makespan(Makespan.Config(), space, Context())
    ok = [r for r in measured["candidates"] if r["us_per_token"] is not None]
    genomes = [KernelGenes(**r["genes"]) for r in ok]
    names, features, prior = feature_matrix(proxy, genomes)
    values = np.asarray([r["us_per_token"] for r in ok])
    cal = calibrate(features, values, prior, names, np.random.default_rng(seed))
    return {"proxy": "cost-model makespan (+ kernel features after calibration)", "unit": "us per token",
            "device": measured["device"], "config": measured["config"], "candidates": len(ok),
            "failed_candidates": len(measured["candidates"]) - len(ok), "sampling": measured.get("sampling", "uniform"),
            "spearman_before": cal.spearman_before,
            "spearman_after": cal.spearman_after, "spearman_after_cv": cal.spearman_after_cv,
            "calibration": cal.as_dict()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="hidden-1024")
    ap.add_argument("--candidates", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-warps-per-sm", type=int, default=16, help="skip genomes whose blocks x warps exceed this")
    ap.add_argument("--near", help="JSON genes: sample around this kernel instead of uniformly (e.g. a search's best)")
    ap.add_argument("--flips", type=int, default=3, help="with --near: up to this many single-gene changes each")
    ap.add_argument("--measured", help="a measurement file: calibrate it (CPU) instead of measuring")
    ap.add_argument("--out", default=os.environ.get("OUT", str(Path(__file__).parent / "results")))
    args = ap.parse_args()
    if args.measured:
        result = calibrate_measured(json.loads(Path(args.measured).read_text()), args.seed)
        path = Path(__file__).parent / "results" / "search_vs_hand.json"
        table = json.loads(path.read_text()) if path.exists() else {}
        near = "_near" if result["sampling"] != "uniform" else ""   # the search's neighbourhood, beside uniform
        table.setdefault("megakernel", {})["calibration_" + result["config"] + near] = result
        path.write_text(json.dumps(table, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k != "calibration"}, indent=1))
        return
    out = Path(args.out) / f"megakernel_calibration_{args.config}{'_near' if args.near else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(measure(args, out), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
