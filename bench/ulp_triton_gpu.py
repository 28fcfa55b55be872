"""Every float32 input through the emitted Triton version of each published program, on a CUDA GPU: max ULP (all
2^32 inputs) against the CPU's exhaustive check of the same program, bit-exactness against the CPU simulation, and
throughput against torch's own float32 function on the same GPU.

    python bench/ulp_triton_gpu.py                       # every bench/results/NAME.json; JSON to $OUT (or bench/results)
    python bench/ulp_triton_gpu.py --only exp sin --chunk-log2 26
    python bench/ulp_triton_gpu.py --cpu-interpreter --walk-log2 16 --throughput-log2 12   # dry run, no GPU

Standalone on a CUDA host with Python 3.12, torch, triton and numpy: from this repository it imports only
spaces/float32 (numpy). For NAME it emits the published program (bench/results/NAME.json) as Triton
(spaces/float32/emit.py), wraps it in an elementwise kernel compiled with enable_fp_fusion=False (a fused a*b + c
would differ from the verified program), and
- walks all 2^32 bit patterns in chunks on the GPU: error in float32 ULPs against a binary64 reference computed on
  the GPU (torch float64; within a few binary64 ULPs, so within 2^-27 float32 ULP, as objectives/ulp.py argues), the
  same walk for torch's float32 function (the peer); compared with bench/results/ulp_exhaustive.json (CPU, glibc
  binary64 reference, the emitted C): the two max ULPs should agree to ~1e-7;
- compares bits with the CPU simulation (reduction.Target.evaluate, bit-exact with the C) on 2^20 sampled inputs
  plus the target's hard points and special values: every mismatch is reported;
- times the kernel and torch's function on 2^26 inputs (CUDA events, median of --repeats interleaved runs).
Writes ulp_triton_gpu.json under $OUT when set, else bench/results/.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spaces.float32 import emit as emitters  # noqa: E402
from spaces.float32.reduction import TARGETS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEVICE = "cuda"
NAMES = ("exp", "exp2", "log", "log2", "sin", "cos", "tanh", "sigmoid", "erf")

KERNEL = """

@triton.jit
def _kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, evoforge_{name}(tl.load(x_ptr + offs, mask=mask, other=0.0)), mask=mask)


def run(x, y):
    n = x.numel()
    _kernel[(triton.cdiv(n, 1024),)](x, y, n, BLOCK=1024, num_warps=4, enable_fp_fusion=False)
"""


def reference64(name: str, x64: torch.Tensor) -> torch.Tensor:
    if name == "sigmoid":
        return 1.0 / (1.0 + torch.exp(-x64))
    if name == "erf":
        return torch.special.erf(x64)
    return getattr(torch, name)(x64)


def torch_f32(name: str, x: torch.Tensor) -> torch.Tensor:
    return {"sigmoid": torch.sigmoid, "erf": torch.special.erf}.get(name, getattr(torch, name, None))(x)


def ulp_error(y: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """reduction.ulp_error in torch: |y - ref| / ulp32(ref), NaN meets NaN, inf meets a reference rounding to inf."""
    y64 = y.double()
    a = ref.abs()
    _, e = torch.frexp(a)
    ulp = torch.ldexp(torch.ones_like(a), torch.clamp(e - 24, min=-149))
    ulp = torch.where(a < 2.0 ** -126, torch.full_like(a, 2.0 ** -149), ulp)
    err = (y64 - ref).abs() / ulp
    ref32 = ref.float().double()
    yinf = torch.isinf(y64)
    inf = torch.full_like(err, float("inf"))
    zero = torch.zeros_like(err)
    err = torch.where(yinf, torch.where(y64 == ref32, zero, inf), err)
    err = torch.where(torch.isinf(ref) & ~yinf, inf, err)
    ynan, rnan = torch.isnan(y64), torch.isnan(ref)
    return torch.where(ynan | rnan, torch.where(ynan & rnan, zero, inf), err)


def load_kernel(name: str, workdir: Path):
    info = json.loads((RESULTS / f"{name}.json").read_text())
    prog = ast.literal_eval(info["genome"])
    consts = [float.fromhex(c) for c in info["constants"]]
    src = emitters.emit(prog, consts, TARGETS[name], "triton", f"Origin: {info['origin']}.") + KERNEL.format(name=name)
    path = workdir / f"evoforge_triton_{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run, prog, consts, info


def exhaustive(name: str, run, chunk_log2: int, walk_log2: int = 32) -> dict:
    """Max ULP, where, and counts over all 2^32 inputs (the first 2^walk_log2 bit patterns in a dry run), for the
    Triton kernel and torch's float32 function."""
    size = 1 << min(chunk_log2, walk_log2)
    agg = {k: {"max_ulp": 0.0, "worst_input_bits": 0, "not_correctly_rounded": 0, "over_1_ulp": 0}
           for k in ("triton", "torch")}
    y = torch.empty(size, dtype=torch.float32, device=DEVICE)
    t0 = time.perf_counter()
    for start in range(0, 1 << walk_log2, size):
        b = torch.arange(start, start + size, dtype=torch.int64, device=DEVICE)
        b = torch.where(b >= 2 ** 31, b - 2 ** 32, b).to(torch.int32)
        x = b.view(torch.float32)
        ref = reference64(name, x.double())
        run(x, y)
        for k, out in (("triton", y), ("torch", torch_f32(name, x))):
            err = ulp_error(out, ref)
            a = agg[k]
            a["not_correctly_rounded"] += int((err > 0.5).sum())
            a["over_1_ulp"] += int((err > 1.0).sum())
            i = int(torch.argmax(torch.nan_to_num(err, posinf=1e300)))
            if float(err[i]) > a["max_ulp"]:
                a["max_ulp"], a["worst_input_bits"] = float(err[i]), (start + i) & 0xFFFFFFFF
        del ref
    sync()
    for a in agg.values():
        a["worst_input"] = float(np.array([a["worst_input_bits"]], np.uint32).view(np.float32)[0])
        a["worst_input_bits"] = f"0x{a['worst_input_bits']:08x}"
    return {**agg, "inputs": 1 << walk_log2, "seconds": round(time.perf_counter() - t0, 1)}


def bit_check(name: str, run, prog, consts) -> dict:
    target = TARGETS[name]
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, 3.4028235e38,
                         -3.4028235e38, 1.1754944e-38], np.float32)
    x = np.concatenate([target.sample(1 << 20, np.random.default_rng(77)), target.hard_points(), specials])
    x = x.astype(np.float32)
    want = target.evaluate(prog, consts, x)
    y = torch.empty(x.size, dtype=torch.float32, device=DEVICE)
    run(torch.from_numpy(x).to(DEVICE), y)
    got = y.cpu().numpy()
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    bad = np.flatnonzero(~same)[:10]
    return {"inputs": int(x.size), "mismatches": int((~same).sum()),
            "first_mismatches": [{"x": float(x[i]), "gpu": float(got[i]), "cpu": float(want[i])} for i in bad]}


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _seconds(fn) -> float:
    """One call's wall time: CUDA events on the GPU, perf_counter on the CPU dry run."""
    if DEVICE != "cuda":
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) * 1e-3


def throughput(name: str, run, repeats: int, n_log2: int = 26) -> dict:
    lo_hi = {"exp": (-87.0, 88.0), "exp2": (-126.0, 127.0), "log": (1e-30, 1e30), "log2": (1e-30, 1e30),
             "sin": (-100.0, 100.0), "cos": (-100.0, 100.0), "tanh": (-10.0, 10.0), "sigmoid": (-20.0, 20.0),
             "erf": (-4.0, 4.0)}[name]
    n = 1 << n_log2
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.rand(n, device=DEVICE, generator=g, dtype=torch.float32) * (lo_hi[1] - lo_hi[0]) + lo_hi[0]
    y = torch.empty_like(x)
    fns = {"triton": lambda: run(x, y), "torch": lambda: torch_f32(name, x)}
    times: dict = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    sync()
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(_seconds(fn))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"inputs": n, "range": list(lo_hi), **{f"{k}_ns_per_element": med[k] / n * 1e9 for k in med},
            **{f"{k}_gelem_per_s": n / med[k] / 1e9 for k in med}, "triton_vs_torch": med["torch"] / med["triton"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    ap.add_argument("--chunk-log2", type=int, default=27)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--skip-exhaustive", action="store_true")
    ap.add_argument("--cpu-interpreter", action="store_true",
                    help="dry run on the CPU under TRITON_INTERPRET=1 (checks emission and the harness, not speed)")
    ap.add_argument("--walk-log2", type=int, default=32, help="walk only the first 2^N bit patterns (dry runs)")
    ap.add_argument("--throughput-log2", type=int, default=26)
    args = ap.parse_args()
    global DEVICE
    if args.cpu_interpreter:
        os.environ["TRITON_INTERPRET"] = "1"          # read when the emitted module's @triton.jit runs
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (or --cpu-interpreter for a dry run)")
    out_dir = Path(os.environ.get("OUT") or RESULTS)
    cpu = json.loads((RESULTS / "ulp_exhaustive.json").read_text()) if (RESULTS / "ulp_exhaustive.json").exists() else {}
    results: dict = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (Triton interpreter)",
                     "walked_inputs": 1 << args.walk_log2, "torch": torch.__version__, "triton": triton.__version__,
                     "cuda": torch.version.cuda, "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            if not (RESULTS / f"{name}.json").exists():
                print(f"{name}: no published program, skipped")
                continue
            run, prog, consts, info = load_kernel(name, Path(tmp))
            row: dict = {"origin": info["origin"], "program_ops": info["program_ops"]}
            row["bit_check_vs_cpu_simulation"] = bit_check(name, run, prog, consts)
            if not args.skip_exhaustive:
                row["exhaustive"] = exhaustive(name, run, args.chunk_log2, args.walk_log2)
                c = cpu.get(name, {}).get("ours")
                if c and args.walk_log2 == 32:
                    row["cpu_exhaustive_max_ulp"] = c["max_ulp"]
                    row["gpu_minus_cpu_max_ulp"] = row["exhaustive"]["triton"]["max_ulp"] - c["max_ulp"]
            row["throughput"] = throughput(name, run, args.repeats, args.throughput_log2)
            results["functions"][name] = row
            print(json.dumps({name: row}), flush=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "ulp_triton_gpu.json").write_text(json.dumps(results, indent=1))
    print(f"\n{'func':<8} {'bit mismatches':>14} {'triton max ULP':>15} {'cpu max ULP':>12} {'torch max ULP':>14} "
          f"{'triton ns/el':>12} {'torch ns/el':>12} {'vs torch':>9}")
    for name, r in results["functions"].items():
        ex = r.get("exhaustive", {})
        t = r["throughput"]
        print(f"{name:<8} {r['bit_check_vs_cpu_simulation']['mismatches']:>14} "
              f"{ex.get('triton', {}).get('max_ulp', float('nan')):>15.4f} {r.get('cpu_exhaustive_max_ulp', float('nan')):>12.4f} "
              f"{ex.get('torch', {}).get('max_ulp', float('nan')):>14.4f} {t['triton_ns_per_element']:>12.4f} "
              f"{t['torch_ns_per_element']:>12.4f} {t['triton_vs_torch']:>8.2f}x")
    print(f"written: {out_dir / 'ulp_triton_gpu.json'}")


if __name__ == "__main__":
    main()
