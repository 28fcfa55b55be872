"""Running a certified streaming megakernel on a CUDA GPU: arenas, task tables, compile, launch, greedy decode.

Needs torch with CUDA and cupy (NVRTC, or nvcc when present for parallel compiles). The schedule is validated
before anything is compiled (`StreamMegakernel` refuses one the validator rejects), and the kernel's watchdog turns a
hang into a status word, reported here as `KernelFailure`.

Arenas: W holds every weight storage (bfloat16 or float32), A every float32 activation (and the RoPE frequency
table), C the KV cache (same dtype as W). Each storage starts on a 128-byte boundary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spaces.megakernel.emit_stream import OP_CODES, emit_stream_cuda
from spaces.megakernel.ir import Region, Schedule
from spaces.megakernel.lower import ModelDims, rope_inv_freq
from spaces.megakernel.overlap_launch import OverlapLauncher, launch_overlap_safe
from spaces.megakernel.stream import KernelGenes, stream_weights

ACTIVATIONS = ("x", "qkv", "part", "act", "logits", "argmax", "tokens", "w_rope_inv", "mlp_acc")
CACHES = ("kcache", "vcache")


def _function_ptr(kernel: Any) -> int:
    """The CUfunction handle of a cupy RawKernel (its `kernel` is the loaded Function) or Function."""
    return int(getattr(kernel, "kernel", kernel).ptr)


class KernelFailure(RuntimeError):
    """The kernel could not be launched resident, or its watchdog fired (a wait never completed)."""


def arenas(s: Schedule) -> dict[str, tuple[str, int]]:
    """storage -> (arena W|A|C, element offset), 64-element aligned, in buffer order."""
    size: dict[str, int] = {}
    for b in s.buffers:
        size[b.storage] = max(size.get(b.storage, 0), b.end)
    out, at = {}, {"W": 0, "A": 0, "C": 0}
    for st, n in size.items():
        arena = "A" if st in ACTIVATIONS else "C" if st in CACHES else "W"
        out[st] = (arena, at[arena])
        at[arena] += (n + 63) // 64 * 64
    out.update({f"__{k}__": (k, v) for k, v in at.items()})
    return out


def task_table(s: Schedule) -> np.ndarray:
    """int64 (tasks, 16): op, n, k, w, w2, g, in, out, aux0..aux7 as the kernel reads them (emit_stream.Task)."""
    layout = arenas(s)
    where = {b.name: b for b in s.buffers}
    d = ModelDims(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.meta["dims"].items()})

    def off(r) -> int:
        b = where[r.buffer]
        return layout[b.storage][1] + b.offset + r.start

    rows = []
    for t in s.tasks:
        p, R, Wr = dict(t.params), t.reads, t.writes
        e = [OP_CODES[t.op]] + [0] * 15
        if t.op == "embed_argmax":
            e[1:4] = [d.hidden, 0, off(R[1])]
            e[5] = off(Wr[2]) if len(Wr) > 2 else -1      # fuse_mlp: the accumulator it zeroes
            e[7], e[8], e[9], e[10], e[11] = off(Wr[0]), off(R[0]), (R[0].stop - R[0].start) // 2, off(Wr[1]), \
                Wr[1].stop - Wr[1].start
        elif t.op == "embed_norm_matvec":   # fuse_embed: reads argmax, w_embed, norm, w_qkv; writes qkv, x share..
            e[1:5] = [p["row1"] - p["row0"], d.hidden, off(R[3]), off(R[1])]
            e[5], e[7] = off(R[2]), off(Wr[0])
            e[6] = off(Region("x", 0, 1))
            e[8], e[9] = off(R[0]), (R[0].stop - R[0].start) // 2
            tokens = [r for r in Wr if r.buffer == "tokens"]
            e[10], e[11] = (off(tokens[0]), tokens[0].stop - tokens[0].start) if tokens else (-1, 1)
            e[12], e[13] = p["x0"], p["x1"]
            e[14] = off(Region("mlp_acc", 0, 1)) if any(r.buffer == "mlp_acc" for r in Wr) else -1
        elif t.op in ("norm_matvec", "norm_matvec_argmax", "norm_acc_matvec", "norm_acc_matvec_argmax"):
            e[1:4] = [p["row1"] - p["row0"], d.hidden, off(R[2])]
            e[5], e[6], e[7] = off(R[1]), off(R[0]), off(Wr[0])
            if t.op in ("norm_matvec_argmax", "norm_acc_matvec_argmax"):
                e[8], e[9] = off(Wr[1]), p["row0"]
            if t.op == "norm_acc_matvec":
                e[8] = off(R[3])
            elif t.op == "norm_acc_matvec_argmax":
                e[10] = off(R[3])
        elif t.op == "norm_gate_up_down":
            e[1:5] = [p["row1"] - p["row0"], d.hidden, off(R[2]), off(R[3])]
            e[5], e[6], e[7], e[8] = off(R[1]), off(R[0]), off(t.accumulates[0]), off(R[4])
        elif t.op == "norm_gate_up":
            e[1:5] = [p["row1"] - p["row0"], d.hidden, off(R[2]), off(R[3])]
            e[5], e[6], e[7] = off(R[1]), off(R[0]), off(Wr[0])
        elif t.op in ("matvec_residual", "combine_matvec_residual", "combine_matvec_residual_acc"):
            e[1:4] = [p["row1"] - p["row0"], R[0].stop - R[0].start if t.op == "matvec_residual" else
                      d.heads * d.head_dim, off(R[1])]
            e[6], e[7] = off(R[0]), off(Wr[0])
            if t.op == "combine_matvec_residual_acc":
                e[8] = off(R[3])
        elif t.op == "combine_group_matvec_acc":
            e[1:4] = [p["row1"] - p["row0"], d.heads // d.kv_heads * d.head_dim, off(R[1])]
            e[6], e[7] = layout["part"][1], off(t.accumulates[0])   # records at the kernel's stride: by group
            e[11] = p["group"]
            e[8] = off(R[2]) if Wr else -1                          # fuse_mlp: the MLP sum's rows it folds into x
            e[9] = off(Region("x", p["fold0"], p["fold1"]))
            e[10] = p["fold1"] - p["fold0"] if Wr else 0
        elif t.op == "attention_partial":
            q0 = R[0].start
            e[3], e[4] = off(Wr[0]), off(Wr[1])
            e[5], e[6] = off(R[5]), off(R[0]) - q0                    # RoPE table; the qkv buffer's start
            e[7] = layout["part"][1]
            e[8:12] = [p["head"], p["chunk"], p["pos0"], p["pos1"]]
        else:
            raise ValueError(f"op {t.op!r} is not a streaming op")
        rows.append(e)
    return np.asarray(rows, dtype=np.int64)


def step_table(s: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """int32 steps (m, 3) = (kind 0 run / 1 signal / 2 wait, task or counter, count) and each block's start."""
    counter = {c: i for i, c in enumerate(s.counters)}
    steps, starts = [], [0]
    for program in s.programs:
        for st in program:
            if st.kind == "run":
                steps.append((0, st.task, 0))
            elif st.kind in ("signal", "wait"):
                steps.append((1 if st.kind == "signal" else 2, counter[st.counter], st.count))
            else:
                raise ValueError("the streaming kernel has no grid barrier; lower with stream_schedule")
        starts.append(len(steps))
    return np.asarray(steps, dtype=np.int32).reshape(-1, 3), np.asarray(starts, dtype=np.int32)


def compile_kernel(source: str, cache_dir: str | None = None) -> Any:
    """A cupy RawKernel for `source`: nvcc to a cubin when nvcc is on PATH (cached by source hash, safe to run in
    parallel processes), else NVRTC."""
    return compile_module(source, cache_dir).get_function("megakernel")


def compile_module(source: str, cache_dir: str | None = None) -> Any:
    """The cupy RawModule of `source` (see `compile_kernel`); its globals are reachable with `get_global`."""
    import cupy as cp

    nvcc = shutil.which("nvcc")
    if nvcc:
        cache = Path(cache_dir or os.environ.get("EVOFORGE_CUBIN_CACHE", tempfile.gettempdir())) / "evoforge-cubins"
        cache.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(source.encode()).hexdigest()[:20]
        cubin = cache / f"{digest}.cubin"
        if not cubin.exists():
            # a private work directory per compile: processes in different PID namespaces (Ray workers in
            # containers) can share a pid, and a pid-named temporary file was then replaced under another compile
            with tempfile.TemporaryDirectory(dir=cache) as work:
                cu, tmp = Path(work) / "k.cu", Path(work) / "k.cubin"
                cu.write_text(source)
                r = subprocess.run([nvcc, "-arch=sm_90", "-std=c++17", "-O3", "-cubin", "-o", str(tmp), str(cu)],
                                   capture_output=True, text=True)
                if r.returncode:
                    raise KernelFailure(
                        f"nvcc failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
                os.replace(tmp, cubin)
        return cp.RawModule(path=str(cubin))
    return cp.RawModule(code=source, options=("--std=c++17", "-arch=sm_90"))


def random_weights_gpu(d: ModelDims, dtype: str, seed: int = 0) -> dict[str, Any]:
    """Weights of the streaming layout drawn on the GPU with fan-in scaling (logits spread, so greedy decoding is
    not a tie-break lottery); norms near 1. Flat torch tensors keyed by weight buffer name."""
    import torch

    gen = torch.Generator(device="cuda").manual_seed(seed)
    H, inter, L, V, Q, R = d.hidden, d.intermediate, d.layers, d.vocab, d.heads * d.head_dim, d.qkv_rows
    tdt = torch.bfloat16 if dtype == "bfloat16" else torch.float32

    def normal(n, std):
        return (torch.randn(n, generator=gen, device="cuda") * std).to(tdt)

    w = {"w_embed": normal(V * H, 1.0 if not d.tied else H ** -0.5),
         "w_attn_norm": (1 + normal(L * H, 0.1).float()).to(tdt),
         "w_qkv": normal(L * R * H, H ** -0.5), "w_o": normal(L * H * Q, Q ** -0.5),
         "w_mlp_norm": (1 + normal(L * H, 0.1).float()).to(tdt),
         "w_gate_up": normal(L * 2 * inter * H, H ** -0.5), "w_down": normal(L * H * inter, inter ** -0.5),
         "w_final_norm": (1 + normal(H, 0.1).float()).to(tdt)}
    if not d.tied:
        w["w_lm_head"] = normal(V * H, H ** -0.5)
    return w


@dataclass
class DecodeTiming:
    us_per_token: float
    samples_us: list[float]


class StreamMegakernel:
    """A validated streaming schedule compiled and loaded with weights on the current CUDA device."""

    def __init__(self, s: Schedule, weights: dict[str, Any], dtype: str = "bfloat16", validate_first: bool = True,
                 kernel: Any = None):
        import cupy as cp
        import torch

        if validate_first:
            from objectives.schedule_validator import validate

            verdict = validate(s)
            if not verdict.accepted:
                raise KernelFailure(f"validator rejects the schedule: {verdict.rejections[0]}")
        self.s, self.dtype = s, dtype
        self.d = ModelDims(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.meta["dims"].items()})
        self.genes = KernelGenes(**s.meta["genes"])
        layout = arenas(s)
        tdt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self.W = torch.zeros(layout["__W__"][1], dtype=tdt, device="cuda")
        self.A = torch.zeros(layout["__A__"][1], dtype=torch.float32, device="cuda")
        self.C = torch.zeros(layout["__C__"][1], dtype=tdt, device="cuda")
        self.layout = layout
        where = {b.name: b for b in s.buffers}
        weights = stream_weights(weights, self.d, self.genes)
        for name, tensor in weights.items():
            b = where[name]
            base = layout[b.storage][1] + b.offset
            self.W[base: base + b.size].copy_(tensor.reshape(-1).to(tdt))
        inv = torch.from_numpy(rope_inv_freq(self.d)).cuda()
        base = layout["w_rope_inv"][1]
        self.A[base: base + inv.numel()] = inv
        self.tasks = torch.from_numpy(task_table(s)).cuda()
        steps, starts = step_table(s)
        self.steps, self.starts = torch.from_numpy(steps).cuda(), torch.from_numpy(starts).cuda()
        task_rows = self.tasks.cpu().numpy()
        self.counters = torch.zeros(max(1, len(s.counters)), dtype=torch.int32, device="cuda")
        self.status = torch.zeros(1, dtype=torch.int32, device="cuda")
        self.kernel = kernel or compile_kernel(emit_stream_cuda(self.d, self.genes, dtype))
        self.epoch = 0
        self.threads = self.genes.warps * 32
        self._check_residency()

        def arr(t):
            return cp.asarray(t.view(torch.int16) if t.dtype == torch.bfloat16 else t)

        self._args = [arr(self.W), arr(self.A), arr(self.C), arr(self.tasks), arr(self.steps), arr(self.starts),
                      arr(self.counters), arr(self.status)]
        # overlap_launch: the next step may start while this one's tail runs, when the schedule allows it
        # (spaces/megakernel/overlap_launch.py); otherwise a plain launch (the kernel is correct either way)
        self.overlap_refused = (launch_overlap_safe(steps, starts, task_rows) if self.genes.overlap_launch
                                else "overlap_launch gene is 0")
        if self.overlap_refused is None and torch.cuda.get_device_capability()[0] < 9:
            self.overlap_refused = "programmatic dependent launch needs sm_90 or newer"
        self._overlap = None
        if self.overlap_refused is None:
            try:
                self._overlap = OverlapLauncher(_function_ptr(self.kernel), self.s.workers, self.threads)
            except (OSError, AttributeError) as exc:   # no libcuda.so.1, or a driver older than CUDA 12.0
                self.overlap_refused = f"cuLaunchKernelEx unavailable ({exc})"
        logits = layout["logits"][1]
        self.logits = self.A[logits: logits + self.d.vocab]
        tokens = where["tokens"]
        self._tokens = (layout["tokens"][1], tokens.size)

    def _check_residency(self) -> None:
        """Every worker must be co-resident, or a persistent kernel waits forever for a block that never starts."""
        import cupy as cp
        import torch

        sms = torch.cuda.get_device_properties(0).multi_processor_count
        try:
            per_sm = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(_function_ptr(self.kernel), self.threads, 0)
        except Exception:  # noqa: BLE001 - older cupy: estimate from registers and shared memory
            regs = self.kernel.num_regs
            per_sm = min(65536 // max(1, ((regs * 32 + 255) // 256 * 256) * (self.threads // 32)),
                         (233472 - 1024) // (self.kernel.shared_size_bytes + 1024), 2048 // self.threads)
        if self.s.workers > per_sm * sms:
            raise KernelFailure(f"{self.s.workers} workers but only {per_sm} blocks per SM x {sms} SMs fit "
                                f"({self.kernel.num_regs} registers, {self.kernel.shared_size_bytes} B shared)")

    def launch(self, token: int, pos: int) -> None:
        """One decode step, asynchronous on the current stream. token < 0: the previous step's argmax."""
        import cupy as cp

        self.epoch += 1
        if self._overlap is not None:
            self._overlap(cp.cuda.get_current_stream().ptr, [a.data.ptr for a in self._args],
                          [token, pos, self.epoch])
            return
        self.kernel((self.s.workers,), (self.threads,),
                    (*self._args, np.int32(token), np.int32(pos), np.int32(self.epoch)))

    def check(self) -> None:
        import torch

        torch.cuda.synchronize()
        code = int(self.status.item())
        if code:
            raise KernelFailure({1: "watchdog: a wait never completed (schedule hang)",
                                 2: "the schedule has a grid barrier, which the streaming kernel does not run"}.get(
                code, "a task's op is not compiled into this kernel: kernel and schedule come from different genes"))

    def generate(self, prompt: list[int], new_tokens: int) -> tuple[list[int], list[Any]]:
        """Greedy decoding from `prompt`; returns the tokens and each generated step's logits (copies)."""
        out, logits = list(prompt), []
        for pos in range(len(prompt) + new_tokens - 1):
            self.launch(out[pos] if pos < len(prompt) else -1, pos)
            if pos >= len(prompt) - 1:
                logits.append(self.logits.clone())
                out.append(int(self.logits.argmax()))
        self.check()
        return out, logits

    def fill_cache(self, values: Any) -> None:
        """Overwrite the KV cache (layers, 2, kv_heads, positions, head_dim) laid out as the kernel reads it."""
        d = self.d
        n = d.layers * d.kv_heads * d.max_positions * d.head_dim
        for i, name in enumerate(CACHES):
            base = self.layout[name][1]
            self.C[base: base + n].copy_(values[:, i].reshape(-1))

    def time_decode(self, start_pos: int, steps: int, repeats: int = 5) -> DecodeTiming:
        """Per-token time (us) of `steps` back-to-back greedy steps from `start_pos` (token fed back on the GPU),
        median over repeats, CUDA events."""
        import torch

        def once():
            self.launch(1, start_pos)
            for p in range(start_pos + 1, start_pos + steps):
                self.launch(-1, p)

        once()
        self.check()
        samples = []
        for _ in range(repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            once()
            b.record()
            torch.cuda.synchronize()
            samples.append(a.elapsed_time(b) * 1e3 / steps)
        self.check()
        return DecodeTiming(float(np.median(samples)), samples)


def bytes_per_step(d: ModelDims, dtype: str, positions: float) -> float:
    """Bytes a decode step must read at least: every weight once (the embedding table only one row, or all of it
    as the tied LM head) and the KV cache of `positions` positions."""
    e = 2 if dtype == "bfloat16" else 4
    H, inter, L, V, Q, R = d.hidden, d.intermediate, d.layers, d.vocab, d.heads * d.head_dim, d.qkv_rows
    per_layer = R * H + H * Q + 2 * inter * H + H * inter + 2 * H
    weights = L * per_layer + V * H + H + (0 if d.tied else H)
    cache = L * 2 * d.kv_heads * d.head_dim * positions
    return float(e * (weights + cache))
