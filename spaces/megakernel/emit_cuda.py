"""CUDA C++ source of one persistent kernel that runs a validated schedule: one thread block per worker.

The schedule is baked in as constant tables (task descriptors, each block's step list), so the kernel is a small
interpreter: `run` executes a task over the float32 arena, `signal` is __syncthreads + __threadfence + atomicAdd,
`wait` spins on the counter (thread 0) then fences, `barrier` is a counting grid barrier. Counters and the barrier
word must be zeroed before each launch. Activations written by other blocks are read with ld.global.cg (L2, not
the non-coherent L1). Launch with exactly `workers` blocks of 256 threads; all must be co-resident (the validator's
capacity rule).

Kernel signature: megakernel(float* arena, int* counters, int* barrier, int token, int pos).
`arena_layout(schedule)` gives each storage's element offset in the arena.
"""

from __future__ import annotations

from search.protocols import UserError
from spaces.megakernel.ir import Region, Schedule
from spaces.megakernel.lower import ModelDims

OPS = {"embed": 0, "rmsnorm": 1, "matvec": 2, "matvec_residual": 3, "gate_up": 4, "rope_kv": 5, "attention": 6,
       "norm_matvec": 7, "norm_gate_up": 8}
THREADS = 256


def arena_layout(s: Schedule) -> tuple[dict[str, int], int]:
    """Storage -> first element in the arena (32-element aligned), and the arena's length in elements."""
    size: dict[str, int] = {}
    for b in s.buffers:
        size[b.storage] = max(size.get(b.storage, 0), b.end)
    base, at = {}, 0
    for st, n in size.items():
        base[st] = at
        at += (n + 31) // 32 * 32
    return base, at


def _descriptor(s: Schedule, t, base: dict[str, int]) -> list[int]:
    def off(r: Region) -> int:
        b = s.buffer(r.buffer)
        return base[b.storage] + b.offset + r.start

    reads = [off(r) for r in t.reads] + [0] * (4 - len(t.reads))
    writes = [off(r) for r in t.writes] + [0] * (2 - len(t.writes))
    w0 = t.writes[0]
    p = dict(t.params)
    if t.op in ("rope_kv", "attention"):
        n, k, h0 = p["head1"] - p["head0"], 0, p["head0"]
    else:
        n, k, h0 = w0.stop - w0.start, t.reads[0].stop - t.reads[0].start, 0
    return [OPS[t.op], *reads[:4], *writes[:2], n, k, h0]


def emit_cuda(s: Schedule) -> str:
    """The kernel source for `s`; raises UserError unless the validator accepts `s`."""
    from objectives.schedule_validator import validate

    verdict = validate(s)
    if not verdict.accepted:
        raise UserError(f"schedule: the validator rejects it ({verdict.rejections[0]}); emit only certified schedules")
    d = ModelDims(**s.meta["dims"])
    base, _ = arena_layout(s)
    tasks = ",\n".join("  {" + ", ".join(map(str, _descriptor(s, t, base))) + "}" for t in s.tasks)
    counter = {c: i for i, c in enumerate(s.counters)}
    steps, starts = [], [0]
    for p in s.programs:
        for st in p:
            kind = ("run", "signal", "wait", "barrier").index(st.kind)
            a = st.task if st.kind == "run" else counter.get(st.counter, 0)
            steps.append(f"{{{kind}, {a}, {st.count}}}")
        starts.append(len(steps))
    steps_src = ", ".join(steps) or "{3, 0, 0}"
    return f"""// persistent megakernel: {s.workers} workers, {len(s.tasks)} tasks, {len(s.counters)} counters
// model: hidden {d.hidden}, layers {d.layers}, heads {d.heads}/{d.kv_heads}, head_dim {d.head_dim}, vocab {d.vocab}
#define NT {THREADS}
#define NWARPS (NT / 32)
#define HD {d.head_dim}
#define MAXP {d.max_positions}
#define HID {d.hidden}
#define GROUP {d.heads // d.kv_heads}
#define EPS {d.eps!r}f
#define THETA {d.rope_theta!r}f

struct Task {{ int op, r0, r1, r2, r3, w0, w1, n, k, h0; }};
struct Step {{ int kind, a, b; }};
__device__ const Task TASKS[{len(s.tasks)}] = {{
{tasks}
}};
__device__ const Step STEPS[{max(1, len(steps))}] = {{ {steps_src} }};
__device__ const int PROG[{len(starts)}] = {{ {", ".join(map(str, starts))} }};

__device__ __forceinline__ float ld(const float* p) {{ return __ldcg(p); }}
__device__ __forceinline__ void st(float* p, float v) {{ __stcg(p, v); }}

__device__ float warp_sum(float v) {{
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}}

__device__ float block_sum(float v, float* red) {{
  v = warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float s = 0.f;
  for (int i = 0; i < NWARPS; ++i) s += red[i];
  return s;
}}

__device__ float dot(const float* w, const float* x, int k, int lane) {{
  float s = 0.f;
  for (int i = lane; i < k; i += 32) s += ld(w + i) * ld(x + i);
  return warp_sum(s);
}}

__device__ float dot_shared(const float* w, const float* xs, int k, int lane) {{
  float s = 0.f;
  for (int i = lane; i < k; i += 32) s += ld(w + i) * xs[i];
  return warp_sum(s);
}}

// RMSNorm of x (length k) into shared memory, recomputed by a fused tile
__device__ void norm_to_shared(const float* x, const float* g, int k, float* xs, float* red) {{
  float ss = 0.f;
  for (int i = threadIdx.x; i < k; i += NT) {{ float v = ld(x + i); ss += v * v; }}
  float r = rsqrtf(block_sum(ss, red) / (float)k + EPS);
  for (int i = threadIdx.x; i < k; i += NT) xs[i] = ld(g + i) * (ld(x + i) * r);
  __syncthreads();
}}

__device__ float rope_at(const float* v, int d, int pos) {{
  int half = HD / 2, i = d % half;
  float inv = 1.0f / powf(THETA, (float)(2 * i) / (float)HD);
  float ang = (float)pos * inv;
  float rot = d < half ? -ld(v + d + half) : ld(v + d - half);
  return ld(v + d) * cosf(ang) + rot * sinf(ang);
}}

__device__ void run_task(const Task& t, float* M, int token, int pos, float* red, float* sh, float* xs) {{
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  switch (t.op) {{
  case 0:  // embed
    for (int i = tid; i < t.n; i += NT) st(M + t.w0 + i, ld(M + t.r0 + (long)token * t.n + i));
    break;
  case 1: {{  // rmsnorm
    float ss = 0.f;
    for (int i = tid; i < t.n; i += NT) {{ float x = ld(M + t.r0 + i); ss += x * x; }}
    float r = rsqrtf(block_sum(ss, red) / (float)t.n + EPS);
    for (int i = tid; i < t.n; i += NT) st(M + t.w0 + i, ld(M + t.r1 + i) * (ld(M + t.r0 + i) * r));
    break; }}
  case 2:  // matvec
    for (int r = warp; r < t.n; r += NWARPS) {{
      float s = dot(M + t.r1 + (long)r * t.k, M + t.r0, t.k, lane);
      if (lane == 0) st(M + t.w0 + r, s);
    }}
    break;
  case 3:  // matvec + residual
    for (int r = warp; r < t.n; r += NWARPS) {{
      float s = dot(M + t.r1 + (long)r * t.k, M + t.r0, t.k, lane);
      if (lane == 0) st(M + t.w0 + r, ld(M + t.r2 + r) + s);
    }}
    break;
  case 4:  // gate/up with SiLU
    for (int r = warp; r < t.n; r += NWARPS) {{
      float g = dot(M + t.r1 + (long)r * t.k, M + t.r0, t.k, lane);
      float u = dot(M + t.r2 + (long)r * t.k, M + t.r0, t.k, lane);
      if (lane == 0) st(M + t.w0 + r, g / (1.f + expf(-g)) * u);
    }}
    break;
  case 5:  // RoPE on K, store K and V at `pos`
    for (int i = tid; i < t.n * HD; i += NT) {{
      int h = i / HD, d = i % HD;
      st(M + t.w0 + (h * MAXP + pos) * HD + d, rope_at(M + t.r0 + h * HD, d, pos));
      st(M + t.w1 + (h * MAXP + pos) * HD + d, ld(M + t.r1 + i));
    }}
    break;
  case 6:  // attention for heads h0 .. h0+n
    for (int i = 0; i < t.n; ++i) {{
      int kv = (t.h0 + i) / GROUP - t.h0 / GROUP;
      const float* K = M + t.r1 + kv * MAXP * HD;
      const float* V = M + t.r2 + kv * MAXP * HD;
      __syncthreads();
      for (int d = tid; d < HD; d += NT) sh[d] = rope_at(M + t.r0 + i * HD, d, pos);
      __syncthreads();
      for (int j = warp; j <= pos; j += NWARPS) {{
        float s = 0.f;
        for (int d = lane; d < HD; d += 32) s += ld(K + j * HD + d) * sh[d];
        s = warp_sum(s);
        if (lane == 0) sh[HD + j] = s * rsqrtf((float)HD);
      }}
      __syncthreads();
      float m = -3.0e38f, z = 0.f;
      for (int j = 0; j <= pos; ++j) m = fmaxf(m, sh[HD + j]);
      for (int j = 0; j <= pos; ++j) z += expf(sh[HD + j] - m);
      for (int d = tid; d < HD; d += NT) {{
        float o = 0.f;
        for (int j = 0; j <= pos; ++j) o += expf(sh[HD + j] - m) * ld(V + j * HD + d);
        st(M + t.w0 + i * HD + d, o / z);
      }}
    }}
    break;
  case 7:  // RMSNorm fused into a matvec tile
    norm_to_shared(M + t.r0, M + t.r1, t.k, xs, red);
    for (int r = warp; r < t.n; r += NWARPS) {{
      float s = dot_shared(M + t.r2 + (long)r * t.k, xs, t.k, lane);
      if (lane == 0) st(M + t.w0 + r, s);
    }}
    break;
  case 8:  // RMSNorm fused into a gate/up tile
    norm_to_shared(M + t.r0, M + t.r1, t.k, xs, red);
    for (int r = warp; r < t.n; r += NWARPS) {{
      float g = dot_shared(M + t.r2 + (long)r * t.k, xs, t.k, lane);
      float u = dot_shared(M + t.r3 + (long)r * t.k, xs, t.k, lane);
      if (lane == 0) st(M + t.w0 + r, g / (1.f + expf(-g)) * u);
    }}
    break;
  }}
}}

extern "C" __global__ void __launch_bounds__(NT) megakernel(float* M, int* counters, int* barrier, int token, int pos) {{
  __shared__ float red[NWARPS];
  __shared__ float sh[HD + MAXP];
  __shared__ float xs[HID];
  int w = blockIdx.x, passed = 0;
  for (int i = PROG[w]; i < PROG[w + 1]; ++i) {{
    Step s = STEPS[i];
    if (s.kind == 0) {{
      run_task(TASKS[s.a], M, token, pos, red, sh, xs);
      __syncthreads();
    }} else if (s.kind == 1) {{  // signal: release
      __syncthreads();
      if (threadIdx.x == 0) {{ __threadfence(); atomicAdd(counters + s.a, s.b); }}
    }} else if (s.kind == 2) {{  // wait: acquire
      if (threadIdx.x == 0) {{
        while (atomicAdd(counters + s.a, 0) < s.b) __nanosleep(20);
        __threadfence();
      }}
      __syncthreads();
    }} else {{  // grid barrier
      __syncthreads();
      ++passed;
      if (threadIdx.x == 0) {{
        __threadfence();
        atomicAdd(barrier, 1);
        while (atomicAdd(barrier, 0) < passed * (int)gridDim.x) __nanosleep(20);
        __threadfence();
      }}
      __syncthreads();
    }}
  }}
}}
"""
