"""Where a split output-projection tile (split_o) and an attention task spend their time: %globaltimer stamps
inside the two ops (task start, wait done, inputs in shared memory, end of compute), one traced 1B decode step.

The stamps are patched into the emitted source (the shipped kernel has none), so the figures describe that kernel
plus one global store per stamp. Per op: medians over blocks and layers of start -> wait done, wait done -> inputs
ready, inputs ready -> end of compute. The split_o gene must be on (the output-projection stamps sit in its op).

    python bench/megakernel_stamps.py '{"warps":16,"chunks":16,"fuse_mlp":1,"l2_evict_first":1,"partial_fp16":1,"split_o":1}'

Writes megakernel_stamps.json under $OUT (default bench/results).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS, SLOTS = 30, 80   # decode steps run; stamp slots per block (a multiple of the 16 layers)
DECL = ("__device__ unsigned long long g_mid[2][132 * 80 * 4];\n__device__ int g_cnt[2][132];\n"
        "#define STAMP(o, k) if (threadIdx.x == 0) "
        "g_mid[o][(blockIdx.x * 80 + (g_cnt[o][blockIdx.x] % 80)) * 4 + k] = now_ns()\n")
# (anchor in the emitted source, replacement): 0 = the split output-projection tile, 1 = attention
PATCHES = [
    ("__device__ __forceinline__ float dotv(", DECL + "__device__ __forceinline__ float dotv("),
    ("  const uint4* w = (const uint4*)(W + t.w);\n  uint4 v[OV];",
     "  STAMP(0, 3);\n  const uint4* w = (const uint4*)(W + t.w);\n  uint4 v[OV];"),
    ("  wait();\n  const int nf = (int)t.aux2;", "  wait();\n  STAMP(0, 0);\n  const int nf = (int)t.aux2;"),
    ("  __syncthreads();\n  float* y = A + t.out;", "  __syncthreads();\n  STAMP(0, 1);\n  float* y = A + t.out;"),
    ("#endif\n  }\n}\n\n// Rows [0, n) of M matrices",
     "#endif\n  }\n  STAMP(0, 2);\n  if (threadIdx.x == 0) g_cnt[0][blockIdx.x]++;\n}\n\n// Rows [0, n) of M matrices"),
    ("  wait();\n  // the queries", "  STAMP(1, 3);\n  wait();\n  STAMP(1, 0);\n  // the queries"),
    ("  if (tid < GROUP) { stat[tid] = -3.0e38f; stat[GROUP + tid] = 0.f; }\n  __syncthreads();",
     "  if (tid < GROUP) { stat[tid] = -3.0e38f; stat[GROUP + tid] = 0.f; }\n  __syncthreads();\n  STAMP(1, 1);"),
    ("  if (lane == 0) { mine[HD] = m; mine[HD + 1] = l; }\n  __syncthreads();\n  float* part = A + t.out;\n",
     "  if (lane == 0) { mine[HD] = m; mine[HD + 1] = l; }\n  __syncthreads();\n  STAMP(1, 2);\n"
     "  if (threadIdx.x == 0) g_cnt[1][blockIdx.x]++;\n  float* part = A + t.out;\n"),
]


def stamped_source(src: str) -> str:
    for anchor, replacement in PATCHES:
        if src.count(anchor) != 1:
            raise SystemExit(f"the emitted kernel changed: anchor not found once: {anchor[:40]!r}")
        src = src.replace(anchor, replacement)
    return src


def summary(mid: np.ndarray) -> dict:
    """mid: (2 ops, blocks, slots, 4 stamps) -> medians of the intervals over the last step's blocks and layers."""
    last = (STEPS - 1) % (SLOTS // 16) * 16
    out = {}
    for o, name in ((0, "o_proj"), (1, "attention")):
        m = mid[o][:, last:last + 16, :]
        m = m[(m > 0).all(axis=2).all(axis=1)]
        if not len(m):
            continue
        start_wait, wait_input, input_end = ((m[:, :, b] - m[:, :, a]) / 1e3 for a, b in ((3, 0), (0, 1), (1, 2)))
        out[name] = {"blocks": len(m), "start_to_wait_med": float(np.median(start_wait)),
                     "wait_to_input_med": float(np.median(wait_input)),
                     "input_to_end_med": float(np.median(input_end)),
                     "wait_to_input_p90": float(np.percentile(wait_input, 90)),
                     "input_to_end_p90": float(np.percentile(input_end, 90))}
    return out


def main() -> None:
    import cupy as cp
    import torch

    from spaces.megakernel.emit_stream import emit_stream_cuda
    from spaces.megakernel.lower import ModelDims
    from spaces.megakernel.stream import CONFIGS, KernelGenes, stream_schedule
    from spaces.megakernel.stream_runtime import StreamMegakernel, compile_module, random_weights_gpu

    cfg, kv = "llama-3.2-1b", 1024
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    d = ModelDims.of(CONFIGS[cfg], kv)
    weights = random_weights_gpu(d, "bfloat16", 0)
    report = {}
    for text in sys.argv[1:]:
        genes = KernelGenes(**json.loads(text))
        module = compile_module(stamped_source(emit_stream_cuda(d, genes, "bfloat16")))
        s = stream_schedule(CONFIGS[cfg], genes, sms=sms, kv_length=kv)
        mk = StreamMegakernel(s, weights, "bfloat16", validate_first=False, kernel=module.get_function("megakernel"))
        start = kv - 40
        mk.launch(1, start)
        for p in range(start + 1, start + STEPS):
            mk.launch(-1, p)
        mk.check()
        raw = cp.ndarray((2, 132 * SLOTS * 4), dtype=cp.uint64, memptr=module.get_global("g_mid")).get()
        report[text] = summary(raw.reshape(2, 132, SLOTS, 4).astype(np.int64))
        print(text, json.dumps(report[text], indent=1), flush=True)
        del mk
    out_dir = Path(os.environ.get("OUT", Path(__file__).parent / "results"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "megakernel_stamps.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
