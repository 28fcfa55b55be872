"""Streaming megakernels against the memory roofline and against CUDA graphs and torch.compile (issue 11), and
GPU-timed search over the kernel genes against the hand-written choice (issue 12's megakernel row).

Per config (Llama-3.2-1B in bfloat16 with random weights built from its architecture, and the two smaller configs
of the issue in float32), batch 1, KV cache of `--kv` positions:
- the validator's verdict and seconds on the schedule that is compiled (every compiled schedule is certified);
- tokens: greedy decoding of 32 new tokens against transformers' LlamaForCausalLM holding the same weights in
  float32 (exact arithmetic on the same bf16-rounded weights), and, for bf16, against transformers in bf16;
- per-token time of `--steps` back-to-back greedy steps at the end of the cache (positions kv-steps .. kv-1), the
  token fed back on the GPU, median of `--repeats`: the hand-written genes, the GA's best (search.engine with the
  decode_time objective: validated, compiled, timed), plain PyTorch eager, the same step in a CUDA graph, and
  torch.compile(mode="reduce-overhead"), all in the same dtype and run;
- bandwidth_fraction = bytes the step must read / time / streaming-read bandwidth measured in the same run (before
  it and again after each config, the higher of the two).

The three configs with an 8 x 10 GA take more than one 10-minute device call (torch.compile's warm-up alone is
~70 s at hidden-1024): run them in two calls, the second with `--merge`.

    python bench/megakernel_roofline.py --configs llama-3.2-1b hidden-1024 toy --generations 3 --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DTYPES = {"llama-3.2-1b": "bfloat16", "hidden-1024": "float32", "toy": "float32"}


def stream_bandwidth(gib: float = 4.0) -> dict:
    """Streaming-read bandwidth (GB/s, 10^9 bytes) of a plain read of a `gib` GiB tensor: torch's sum, and a
    16-byte-load read kernel; the best of the two is the roofline's denominator."""
    import cupy as cp
    import torch

    n = int(gib * 2**30) // 16
    buf = torch.empty(n * 4, dtype=torch.int32, device="cuda").random_(0, 1000)
    src = r"""extern "C" __global__ void readall(const uint4* __restrict__ p, long long n, unsigned* out) {
      unsigned acc = 0;
      for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        uint4 v; asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p + i));
        acc ^= v.x ^ v.y ^ v.z ^ v.w; }
      if (acc == 0x12345678u) out[0] = acc; }"""
    kernel = cp.RawKernel(src, "readall")
    out = cp.zeros(1, dtype=cp.uint32)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    arr = cp.asarray(buf)

    def timed(fn, reps=7):
        fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            samples.append(a.elapsed_time(b) / 1e3)
        return n * 16 / float(np.median(samples)) / 1e9

    result = {"bytes": n * 16,
              "torch_sum_gbs": timed(lambda: buf.sum()),
              "read_kernel_gbs": max(timed(lambda g=g: kernel((sms * g,), (512,), (arr, np.int64(n), out)))
                                     for g in (4, 8, 16))}
    result["best_gbs"] = max(result["torch_sum_gbs"], result["read_kernel_gbs"])
    return result


def tokens_check(space, genes, weights, dtype: str, new_tokens: int = 32) -> dict:
    """Greedy tokens of the megakernel against transformers on the same weights (fp32 math; bf16 too for bf16)."""
    import torch

    from spaces.megakernel.stream_runtime import StreamMegakernel
    from spaces.megakernel.torch_decode import hf_greedy, to_transformers

    d = space.dims
    prompt = [int(t) for t in np.random.default_rng(7).integers(0, d.vocab, 8)]
    mk = StreamMegakernel(space.schedule(genes), weights, dtype, validate_first=False)
    tokens, logits = mk.generate(prompt, new_tokens)
    logits = torch.stack(logits).float()
    out = {"prompt": prompt, "new_tokens": new_tokens, "megakernel_tokens": tokens[len(prompt):]}
    for name, tdt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name == "bf16" and dtype != "bfloat16":
            continue
        model = to_transformers(weights, d, tdt)
        ref, ref_logits = hf_greedy(model, prompt, new_tokens)
        del model
        torch.cuda.empty_cache()
        agree = next((i for i, (a, b) in enumerate(zip(tokens, ref)) if a != b), len(ref))
        n = min(len(ref_logits), len(logits))
        out[f"transformers_{name}_tokens"] = ref[len(prompt):]
        out[f"tokens_match_{name}"] = tokens == ref
        out[f"first_mismatch_{name}"] = None if tokens == ref else agree - len(prompt)
        # logits compared only while both decoded the same prefix (after a mismatch they see different inputs)
        upto = min(n, max(1, (agree - len(prompt) + 1) if tokens != ref else n))
        out[f"max_abs_logit_diff_{name}"] = float((logits[:upto] - ref_logits[:upto]).abs().max())
        out[f"logit_scale_{name}"] = float(ref_logits[:upto].abs().max())
    return out


def _ratios(rows: dict) -> dict:
    """Speed ratios (>1: the first is faster) of the found genes against the hand-written and hand-tuned ones."""
    us = {k: r["us_per_token"] for k, r in rows.items() if r.get("us_per_token")}
    tuned = min((v for k, v in us.items() if k.startswith("hand_tuned")), default=None)
    out = {}
    if "found" in us and "hand_written" in us:
        out["found_vs_hand_written"] = us["hand_written"] / us["found"]
    if "found" in us and tuned:
        out["found_vs_best_hand_tuned"] = tuned / us["found"]
    if "hand_written" in us and tuned:
        out["best_hand_tuned_vs_hand_written"] = us["hand_written"] / tuned
    return out


def run_config(name: str, args, bandwidth: dict) -> dict:
    import torch

    from objectives.decode_time import DecodeTime
    from objectives.schedule_validator import validate
    from search.engine import SearchSettings, evolve
    from search.evaluation import LocalEvaluator
    from search.local_search import polish
    from search.protocols import Context
    from spaces.megakernel.stream import KernelGenes
    from spaces.megakernel.stream_runtime import bytes_per_step, random_weights_gpu
    from spaces.megakernel.stream_space import StreamKernelSpace
    from spaces.megakernel.torch_decode import time_peers

    dtype = args.dtype or DTYPES.get(name, "bfloat16")
    kv = args.kv
    steps = min(args.steps, kv - 1)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    space = StreamKernelSpace(StreamKernelSpace.Config(model_config=name, kv_length=kv, sms=sms, dtype=dtype), Context())
    d = space.dims
    objective = DecodeTime(DecodeTime.Config(steps=steps, repeats=args.repeats), space, Context())
    result: dict = {"config": name, "dtype": dtype, "kv_length": kv, "steps": steps, "sms": sms,
                    "dims": {k: v for k, v in d.__dict__.items()}}
    hand = space.hand_written()
    t0 = time.perf_counter()
    verdict = validate(space.schedule(hand))
    s = space.schedule(hand)
    result["validator"] = {"accepted": verdict.accepted, "seconds": time.perf_counter() - t0, "tasks": len(s.tasks),
                           "steps": sum(len(p) for p in s.programs), "workers": s.workers}
    print(f"[{name}] validator: {verdict.report(2)} in {result['validator']['seconds']:.2f} s "
          f"({len(s.tasks)} tasks, {result['validator']['steps']} steps)", flush=True)
    weights = random_weights_gpu(d, dtype, 0)
    objective._weights = weights
    result["tokens_hand"] = tokens_check(space, hand, weights, dtype)
    print(f"[{name}] tokens: { {k: v for k, v in result['tokens_hand'].items() if 'match' in k or 'diff' in k} }", flush=True)
    candidates = {"hand_written": hand}
    for i, v in enumerate(args.variants or []):
        candidates[f"hand_tuned{i}"] = KernelGenes(**{**hand.as_dict(), **json.loads(v)})
    if args.generations:
        t0 = time.perf_counter()
        settings = SearchSettings(population=args.population, generations=args.generations, hall_of_fame=5)
        state = evolve(space, objective, settings, seed=args.seed, evaluator=LocalEvaluator(objective))
        result["search"] = {"seconds": time.perf_counter() - t0, "evaluations": state.evaluations,
                            "front": [{"genes": space.describe(ind.genome), "us_per_token": ind.evaluation.values[0]}
                                      for ind in state.front],
                            "logbook": state.logbook}
        if state.front and args.polish:
            t1 = time.perf_counter()
            pol = polish(state.front[0].genome, state.front[0].evaluation, space.neighbourhood,
                         LocalEvaluator(objective).evaluate, space.key, objective.directions[0],
                         max_evaluations=args.polish, describe=space.describe)
            result["search"]["polish"] = {"seconds": time.perf_counter() - t1, "evaluations": pol.evaluations,
                                          "sweeps": pol.sweeps, "moves": pol.moves,
                                          "genes": space.describe(pol.genome),
                                          "us_per_token": pol.evaluation.values[0]}
            result["search"]["seconds"] = time.perf_counter() - t0
            print(f"[{name}] polish: {pol.evaluations} evaluations, {len(pol.moves)} moves -> "
                  f"{pol.evaluation.values[0]:.1f} us", flush=True)
        if state.front:
            candidates["found"] = pol.genome if args.polish else state.front[0].genome
            t0 = time.perf_counter()
            sf = space.schedule(candidates["found"])
            vf = validate(sf)
            result["validator_found"] = {"accepted": vf.accepted, "seconds": time.perf_counter() - t0,
                                         "tasks": len(sf.tasks), "steps": sum(len(p) for p in sf.programs),
                                         "workers": sf.workers}
        print(f"[{name}] search: {state.evaluations} evaluations in {result['search']['seconds']:.0f} s; "
              f"best {result['search']['front'][:1]}", flush=True)
    evaluations = objective.evaluate_batch(list(candidates.values()))
    positions = (kv - steps) + (steps + 1) / 2
    need = bytes_per_step(d, dtype, positions)
    result["bytes_per_step"] = need
    result["megakernels"] = {}
    for label, g, ev in zip(candidates, candidates.values(), evaluations):
        row = {"genes": g.as_dict(), "failed": ev.failed}
        if ev.failed is None:
            us = ev.values[0]
            row.update(us_per_token=us, spread_us=ev.extras.get("spread_us"),
                       bandwidth_fraction=need / (us * 1e-6) / (bandwidth["best_gbs"] * 1e9),
                       achieved_gbs=need / (us * 1e-6) / 1e9)
        result["megakernels"][label] = row
        print(f"[{name}] {label}: {row}", flush=True)
    if "found" in candidates and result["megakernels"]["found"].get("us_per_token"):
        result["tokens_found"] = tokens_check(space, candidates["found"], weights, dtype)
    timed = {k: r["us_per_token"] for k, r in result["megakernels"].items() if r.get("us_per_token")}
    if timed:
        result["best_label"] = min(timed, key=timed.get)
        if result["best_label"].startswith("hand_tuned"):   # every kernel a figure is claimed for decodes right
            result["tokens_best"] = tokens_check(space, candidates[result["best_label"]], weights, dtype)
            print(f"[{name}] tokens of {result['best_label']}: "
                  f"{ {k: v for k, v in result['tokens_best'].items() if 'match' in k or 'diff' in k} }", flush=True)
    peers = time_peers(weights, d, kv - steps, steps, args.repeats, compile_too=not args.no_compile)
    result["peers"] = peers
    best = min((r["us_per_token"] for r in result["megakernels"].values() if r.get("us_per_token")), default=None)
    if best:
        for key in ("cuda_graph_us", "torch_compile_us", "torch_eager_us"):
            if key in peers:
                result[f"speedup_vs_{key[:-3]}"] = peers[key] / best
        result["best_us_per_token"] = best
        result["best_bandwidth_fraction"] = need / (best * 1e-6) / (bandwidth["best_gbs"] * 1e9)
    result.update(_ratios(result["megakernels"]))
    print(f"[{name}] peers: { {k: v for k, v in peers.items() if k.endswith('_us') or k.endswith('_s')} }", flush=True)
    del weights, objective
    torch.cuda.empty_cache()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["llama-3.2-1b", "hidden-1024", "toy"])
    ap.add_argument("--dtype", default=None, help="override: bfloat16 or float32 (default per config)")
    ap.add_argument("--kv", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generations", type=int, default=0, help="GA generations over the kernel genes (0 = none)")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--polish", type=int, default=0,
                    help="after the GA, up to this many evaluations of single-gene changes from its best "
                         "(search/local_search.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="*", help="hand-tuned gene settings to time beside the search, as JSON objects")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile peer")
    ap.add_argument("--out", default=os.environ.get("OUT", str(Path(__file__).parent / "results")))
    ap.add_argument("--merge", action="store_true",
                    help="keep the configs an existing OUT/megakernel_roofline.json holds that this call does not run")
    args = ap.parse_args()
    import torch

    out_path = Path(args.out) / "megakernel_roofline.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bandwidth = stream_bandwidth()
    print(f"streaming read: {bandwidth}", flush=True)
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "bandwidth": bandwidth,
              "roofline": "bandwidth_fraction = bytes_per_step / us_per_token / best streaming-read bandwidth; "
                          "bytes_per_step = every weight once (tied LM head = the embedding table) + the KV cache "
                          "of the positions attended; the bandwidth is read before the run and again after each "
                          "config, and each config's fractions use the higher of its two readings", "configs": {}}
    if args.merge and out_path.exists():   # a config run in an earlier call keeps its own figures and readings
        report["configs"] = {k: v for k, v in json.loads(out_path.read_text()).get("configs", {}).items()
                             if k not in args.configs}
    for name in args.configs:
        result = run_config(name, args, bandwidth)
        result["run_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        # measured again on the warm GPU right after the config: the roofline's denominator is the higher of the
        # two (a cold first measurement can read 2% low, which would flatter every fraction), and the config's
        # fractions are restated against it, so a run cut short still leaves final figures for what it finished
        again = stream_bandwidth()
        used = max(bandwidth["best_gbs"], again["best_gbs"])
        result.update(bandwidth_start_gbs=bandwidth["best_gbs"], bandwidth_after_gbs=again["best_gbs"],
                      bandwidth_used_gbs=used)
        scale = bandwidth["best_gbs"] / used
        for row in result.get("megakernels", {}).values():
            if row.get("bandwidth_fraction"):
                row["bandwidth_fraction"] *= scale
        if result.get("best_bandwidth_fraction"):
            result["best_bandwidth_fraction"] *= scale
        print(f"[{name}] streaming read again: {again}; fractions against {used:.0f} GB/s", flush=True)
        report["configs"][name] = result
        out_path.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
