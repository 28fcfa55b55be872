"""Where a streaming megakernel's decode step spends its time: per-phase timeline from %globaltimer stamps.

Compiles the kernel with `trace=True` (spaces/megakernel/emit_stream.py), runs `--warm` decode steps, then one traced
step, and reports per op kind (QKV, attention, o_proj, gate_up, down, LM head) summed over layers:
- `wait_us`: from the previous phase's last signal-side end to this phase's median wait completion (join latency
  plus the straggler tail), and `work_us`: from median wait completion to the last block's end;
- `ideal_us`: the phase's weight bytes at the measured streaming-read bandwidth.

    python bench/megakernel_trace.py --config llama-3.2-1b --genes '{"warps":16,"rows":2,"chunks":8}'
Writes megakernel_trace.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KIND = {"norm_matvec": "qkv", "attention_partial": "attention", "combine_matvec_residual": "o_proj",
        "norm_gate_up": "gate_up", "matvec_residual": "down", "norm_matvec_argmax": "lm_head",
        "embed_argmax": "embed", "embed_norm_matvec": "qkv", "norm_acc_matvec": "qkv", "combine_matvec_residual_acc": "o_proj",
        "norm_gate_up_down": "mlp_fused", "norm_acc_matvec_argmax": "lm_head", "combine_group_matvec_acc": "o_proj"}


def phase_table(s, trace: np.ndarray) -> list[dict]:
    """Per phase: first start, median/max wait completion, median/max end (ns), from the traced step rows."""
    rows: dict[int, list[tuple[int, int, int]]] = {}
    i = 0
    for program in s.programs:
        for j, st in enumerate(program):
            nxt = program[j + 1] if j + 1 < len(program) else None
            if st.kind == "wait" and nxt is not None and nxt.kind == "run":
                phase = s.tasks[nxt.task].phase
                rows.setdefault(phase, []).append(tuple(int(x) for x in trace[i]))
            elif st.kind == "run" and (j == 0 or program[j - 1].kind != "wait"):
                rows.setdefault(s.tasks[st.task].phase, []).append(tuple(int(x) for x in trace[i]))
            i += 1
    out = []
    op_of = {t.phase: t.op for t in s.tasks}
    bytes_of: dict[int, float] = {}
    for t in s.tasks:
        bytes_of[t.phase] = bytes_of.get(t.phase, 0.0) + dict(t.params).get("bytes", 0)
    for p in sorted(rows):
        r = np.array(rows[p], dtype=np.float64)
        waited = r[r[:, 1] > 0, 1] if (r[:, 1] > 0).any() else r[:, 0]
        out.append({"phase": p, "op": KIND.get(op_of[p], op_of[p]), "blocks": len(r), "bytes": bytes_of[p],
                     "start_min": r[:, 0].min(), "wait_med": float(np.median(waited)), "wait_max": waited.max(),
                     "end_med": float(np.median(r[:, 2])), "end_max": r[:, 2].max()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="llama-3.2-1b")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--genes", nargs="+", default=['{"warps":16,"rows":2,"chunks":8}'])
    ap.add_argument("--kv", type=int, default=1024)
    ap.add_argument("--bandwidth", type=float, default=4.44e12, help="bytes/s for the ideal column")
    ap.add_argument("--out", default=os.environ.get("OUT", str(Path(__file__).parent / "results")))
    args = ap.parse_args()
    import torch

    from spaces.megakernel.emit_stream import emit_stream_cuda
    from spaces.megakernel.lower import ModelDims
    from spaces.megakernel.stream import CONFIGS, KernelGenes, stream_schedule
    from spaces.megakernel.stream_runtime import StreamMegakernel, compile_module, random_weights_gpu

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    d = ModelDims.of(CONFIGS[args.config], args.kv)
    weights = random_weights_gpu(d, args.dtype, 0)
    report = {"device": torch.cuda.get_device_name(), "config": args.config, "runs": []}
    for text in args.genes:
        genes = KernelGenes(**json.loads(text))
        s = stream_schedule(CONFIGS[args.config], genes, sms=sms, kv_length=args.kv)
        module = compile_module(emit_stream_cuda(d, genes, args.dtype, trace=True))
        mk = StreamMegakernel(s, weights, args.dtype, validate_first=False, kernel=module.get_function("megakernel"))
        n_steps = int(mk.steps.shape[0])
        buf = torch.zeros(n_steps * 3, dtype=torch.int64, device="cuda")
        module.get_global("g_trace").copy_from_host(np.array([buf.data_ptr()], dtype=np.uint64).ctypes.data, 8)
        start = args.kv - 40
        mk.launch(1, start)
        for p in range(start + 1, start + 30):
            mk.launch(-1, p)
        mk.check()
        trace = buf.view(-1, 3).cpu().numpy()
        phases = phase_table(s, trace)
        t0 = min(ph["start_min"] for ph in phases)
        summary: dict[str, dict[str, float]] = {}
        prev_end = t0
        for ph in phases:
            k = summary.setdefault(ph["op"], {"phases": 0, "wait_us": 0.0, "work_us": 0.0, "ideal_us": 0.0})
            k["phases"] += 1
            k["wait_us"] += (ph["wait_med"] - prev_end) / 1e3
            k["work_us"] += (ph["end_max"] - ph["wait_med"]) / 1e3
            k["ideal_us"] += ph["bytes"] / args.bandwidth * 1e6
            prev_end = ph["end_max"]
        total = (max(ph["end_max"] for ph in phases) - t0) / 1e3
        run = {"genes": genes.as_dict(), "step_us": total, "by_op": summary,
               "phases": [{k: (float(v) - t0) / 1e3 if k.startswith(("start", "wait", "end")) else v
                           for k, v in ph.items()} for ph in phases]}
        report["runs"].append(run)
        print(f"genes {genes.as_dict()}: traced step {total:.1f} us")
        for op, k in summary.items():
            print(f"  {op:10s} x{k['phases']:3d}  wait {k['wait_us']:7.1f} us  work {k['work_us']:7.1f} us  "
                  f"ideal {k['ideal_us']:7.1f} us", flush=True)
        del mk
    out = Path(args.out) / "megakernel_trace.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
