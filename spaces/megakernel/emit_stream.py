"""CUDA source of the streaming megakernel: one persistent launch runs a certified `stream` schedule.

The source depends only on the model's shape and the kernel genes (spaces/megakernel/stream.py); the schedule
itself (task descriptors, each block's steps) is uploaded as tables, so one compiled kernel serves every placement.
Hardware facts it relies on:
- weights are streamed with 16-byte `ld.global.nc` loads, `unroll` of them in flight per lane and row, so each SM
  keeps tens of KB in flight (Little's law: HBM3 at ~25 GB/s per SM and ~1 us latency under load);
- activations written by other blocks during the launch are read with `ld.global.cg` (L2), never a stale L1 line;
- a signal is `__syncthreads`, then one `red.release.gpu` add by thread 0 (no full fence); a wait spins on
  `ld.acquire.gpu`;
  counters only grow across launches (a launch waits for count x epoch), so nothing is reset between steps;
- while a block waits, `cp.async.bulk.prefetch.L2` (sm_90) pulls the first `prefetch_kb` of its next task's weights
  into L2, so the wait's latency is spent moving bytes;
- overlap_launch: each block lets the next step's grid launch at once (`griddepcontrol.launch_dependents`); the
  next grid's blocks take SMs as this one's exit, and only its embedding task waits for this grid to complete
  (`griddepcontrol.wait`); every other task waits on a counter that only that task's chain can complete;
- a wait that spins past `WATCHDOG_NS` sets the status word and returns: a bad schedule fails, it never hangs.

Kernel: megakernel(W, A, C, tasks, steps, prog, counters, status, token, pos, epoch) with W the weight arena
(bf16 or fp32), A the float32 activation arena, C the KV-cache arena, tasks int64[n][16], steps int32[m][3].
"""

from __future__ import annotations

from spaces.megakernel.lower import ModelDims
from spaces.megakernel.stream import KernelGenes

OP_CODES = {"embed_argmax": 0, "norm_matvec": 1, "norm_matvec_argmax": 2, "norm_gate_up": 3, "matvec_residual": 4,
            "combine_matvec_residual": 5, "attention_partial": 6,
            # fuse_mlp: the residual accumulator's offset rides in a free slot (emit_stream's run_task)
            "norm_acc_matvec": 7, "combine_matvec_residual_acc": 8, "norm_gate_up_down": 9,
            "norm_acc_matvec_argmax": 10,
            # split_o: one KV-head group's combine and k-slice of the output projection, added into x
            "combine_group_matvec_acc": 11,
            # fuse_embed: layer 0's QKV tile picks the token and normalises its embedding row itself
            "embed_norm_matvec": 12}
WATCHDOG_NS = 2_000_000_000
SUB_POSITIONS = 64   # KV positions staged in shared memory at a time by an attention task


def emit_stream_cuda(d: ModelDims, genes: KernelGenes, dtype: str = "bfloat16", trace: bool = False) -> str:
    """Kernel source for model `d`, kernel `genes`, weights and KV cache in `dtype` (bfloat16 or float32).
    trace: record %globaltimer at each run step's start, wait completion and end into the device array the
    global `g_trace` points at (3 u64 per step, indexed by the step's row in the step table); for profiling."""
    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype {dtype!r}: use bfloat16 or float32")
    bf16 = dtype == "bfloat16"
    chunks = max(1, min(genes.chunks, d.max_positions))
    kmax = max(d.hidden, d.intermediate, d.heads * d.head_dim)
    group = d.heads // d.kv_heads
    attn_warp = genes.attn_warps and genes.warps % group == 0 and d.head_dim % 32 == 0
    header = f"""// evoforge streaming megakernel: {dtype} weights, fp32 accumulation
// model: hidden {d.hidden}, intermediate {d.intermediate}, layers {d.layers}, heads {d.heads}/{d.kv_heads},
// head_dim {d.head_dim}, vocab {d.vocab}, KV length {d.max_positions}; genes {genes.as_dict()}
#define WARPS {genes.warps}
#define NT (WARPS * 32)
#define UNROLL {genes.unroll}
#define DU {min(2 * genes.unroll, 8) if genes.down_early else genes.unroll}
#define DOWN_EARLY {1 if genes.down_early else 0}
#define ATTN_WARP {1 if attn_warp else 0}
#define ROWS {genes.rows}
#define PF_BYTES {genes.prefetch_kb * 1024}
#define SPIN_NS {genes.spin_ns}
#define POLLERS {min(genes.pollers, genes.warps)}
#define POLL_GAP_NS {640 // max(1, genes.pollers)}
#define L2_EVICT_FIRST {genes.l2_evict_first}
#define CHUNKS {chunks}
#define HID {d.hidden}
#define NH {d.heads}
#define NKV {d.kv_heads}
#define HD {d.head_dim}
#define GROUP {d.heads // d.kv_heads}
#define QDIM {d.heads * d.head_dim}
#define KVLEN {d.max_positions}
#define KMAX {kmax}
#define PART16 {1 if (bf16 and genes.partial_fp16) else 0}
#define SUB {SUB_POSITIONS if bf16 else SUB_POSITIONS // 2}
#define EPS {d.eps!r}f
#define WATCHDOG_NS {WATCHDOG_NS}ULL
#define BF16 {1 if bf16 else 0}
#define TRACE {1 if trace else 0}
#define OVERLAP_LAUNCH {1 if genes.overlap_launch else 0}
#define OPS_USED {hex(sum(1 << OP_CODES[op] for op in ops_used(genes)))}
"""
    return header + _BODY


def ops_used(genes: KernelGenes) -> tuple[str, ...]:
    """The ops a schedule lowered with `genes` runs (spaces/megakernel/stream.py). Only these are compiled: the
    whole kernel is one function, and its code (216 KB with every op) outgrows the SM's instruction cache, so each
    phase would begin by fetching its instructions from L2 while the other SMs saturate memory."""
    first = "embed_norm_matvec" if genes.fuse_embed else "embed_argmax"
    if genes.fuse_mlp:
        ops = [first, "norm_acc_matvec", "attention_partial", "norm_gate_up_down", "norm_acc_matvec_argmax"]
        ops.append("combine_group_matvec_acc" if genes.split_o else "combine_matvec_residual_acc")
    else:
        ops = [first, "norm_matvec", "attention_partial", "norm_gate_up", "matvec_residual",
               "norm_matvec_argmax"]
        ops.append("combine_group_matvec_acc" if genes.split_o else "combine_matvec_residual")
    return tuple(ops)


_BODY = r"""
typedef unsigned short bf16_t;
#if BF16
typedef bf16_t w_t;
typedef bf16_t c_t;
#define VEC 8
#else
typedef float w_t;
typedef float c_t;
#define VEC 4
#endif
#define PAIRS (HD / 2)
#define PPL ((PAIRS + 31) / 32)

__device__ __forceinline__ float bf2f(bf16_t v) { return __uint_as_float(((unsigned)v) << 16); }
__device__ __forceinline__ bf16_t f2bf(float f) {
  unsigned u = __float_as_uint(f);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (bf16_t)(u >> 16);
}
#if BF16
__device__ __forceinline__ float w2f(w_t v) { return bf2f(v); }
__device__ __forceinline__ float c2f(c_t v) { return bf2f(v); }
__device__ __forceinline__ c_t f2c(float v) { return f2bf(v); }
#else
__device__ __forceinline__ float w2f(w_t v) { return v; }
__device__ __forceinline__ float c2f(c_t v) { return v; }
__device__ __forceinline__ c_t f2c(float v) { return v; }
#endif

// a weight is read once per step: with L2_EVICT_FIRST its lines go first when L2 needs room, so activations,
// partial sums and the KV cache stay resident while gigabytes stream through
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 r;
#if L2_EVICT_FIRST
  unsigned long long pol;   // a pure asm: the compiler makes the policy once and reuses it
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "l"(pol));
#else
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
#endif
  return r;
}
__device__ __forceinline__ float ldcg(const float* p) { return __ldcg(p); }
__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
// signal: the block's writes (ordered before thread 0 by the __syncthreads before it) released with the add
__device__ __forceinline__ void red_release(int* p, int n) {
  asm volatile("red.release.gpu.global.add.s32 [%0], %1;" :: "l"(p), "r"(n) : "memory");
}
__device__ __forceinline__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void prefetch_l2(const void* p, long long bytes) {
  // cp.async.bulk.prefetch.L2 (sm_90): size a multiple of 16, address 16-byte aligned; issued in 64 KiB pieces
  const char* c = (const char*)p;
  for (long long off = 0; off + 16 <= bytes; off += 65536) {
    unsigned n = (unsigned)((bytes - off) < 65536 ? ((bytes - off) & ~15LL) : 65536);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(c + off), "r"(n) : "memory");
  }
}

// dot of one 16-byte weight vector with VEC consecutive floats of x (shared memory)
__device__ __forceinline__ float dotv(uint4 w, const float* x, float acc) {
#if BF16
  const float4 a = *(const float4*)x, b = *(const float4*)(x + 4);
  acc = fmaf(__uint_as_float(w.x << 16), a.x, acc); acc = fmaf(__uint_as_float(w.x & 0xffff0000u), a.y, acc);
  acc = fmaf(__uint_as_float(w.y << 16), a.z, acc); acc = fmaf(__uint_as_float(w.y & 0xffff0000u), a.w, acc);
  acc = fmaf(__uint_as_float(w.z << 16), b.x, acc); acc = fmaf(__uint_as_float(w.z & 0xffff0000u), b.y, acc);
  acc = fmaf(__uint_as_float(w.w << 16), b.z, acc); acc = fmaf(__uint_as_float(w.w & 0xffff0000u), b.w, acc);
#else
  const float4 a = *(const float4*)x;
  acc = fmaf(__uint_as_float(w.x), a.x, acc); acc = fmaf(__uint_as_float(w.y), a.y, acc);
  acc = fmaf(__uint_as_float(w.z), a.z, acc); acc = fmaf(__uint_as_float(w.w), a.w, acc);
#endif
  return acc;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// K values (a power of two <= 32) summed over the warp at once: at each of the first log2 K levels a lane keeps
// half of its values and swaps the other half with its partner, then plain butterflies finish. K - 1 + 5 - log2 K
// shuffles, not 5 K; lane L ends with value L / (32 / K)'s sum.
template <int K>
__device__ __forceinline__ float warp_sums_t(float* p, int lane) {
  static_assert(K >= 1 && K <= 32 && (K & (K - 1)) == 0, "warp_sums_t: K must be a power of two <= 32");
#pragma unroll
  for (int c = K, o = 16; c > 1; c >>= 1, o >>= 1) {
    const bool hi = lane & o;
#pragma unroll
    for (int k = 0; k < c / 2; ++k)
      p[k] = (hi ? p[k + c / 2] : p[k]) + __shfl_xor_sync(0xffffffffu, hi ? p[k] : p[k + c / 2], o);
  }
  float v = p[0];
#pragma unroll
  for (int o = 16 / K; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float s = 0.f;
  for (int i = 0; i < WARPS; ++i) s += red[i];
  __syncthreads();
  return s;
}

struct Task { long long op, n, k, w, w2, g, in, out, aux0, aux1, aux2, aux3, aux4, aux5, aux6, aux7; };

// The inputs of a projection, each fetched in one round of 16-byte L2 loads (a tile's latency is the number of
// dependent round trips, not the bytes). HID, QDIM and the intermediate size are multiples of 4.
#define XH ((HID / 4 + NT - 1) / NT)

__device__ __forceinline__ float4 load_w4(const w_t* p) {
#if BF16
  const uint2 u = *(const uint2*)p;
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                     __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
#else
  return *(const float4*)p;
#endif
}

// x (length HID) -> RMSNorm(x) * g in shared memory; g (a weight) is loaded before the wait
// fuse_mlp: the residual is x plus the accumulator `acc` the last MLP added into (nullptr: x alone)
template <typename Pro>
__device__ void normed_input(const float* x, const float* acc, const w_t* g, float* xs, float* red, Pro wait) {
  float4 gv[XH];
#pragma unroll
  for (int e = 0; e < XH; ++e) {
    const int i = threadIdx.x + e * NT;
    gv[e] = i < HID / 4 ? load_w4(g + 4 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  wait();
  float4 xv[XH];
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < XH; ++e) {
    const int i = threadIdx.x + e * NT;
    xv[e] = i < HID / 4 ? __ldcg((const float4*)x + i) : make_float4(0.f, 0.f, 0.f, 0.f);
    if (acc && i < HID / 4) {
      const float4 a = __ldcg((const float4*)acc + i);
      xv[e].x += a.x; xv[e].y += a.y; xv[e].z += a.z; xv[e].w += a.w;
    }
  }
#pragma unroll
  for (int e = 0; e < XH; ++e) ss += xv[e].x * xv[e].x + xv[e].y * xv[e].y + xv[e].z * xv[e].z + xv[e].w * xv[e].w;
  const float r = rsqrtf(block_sum(ss, red) / (float)HID + EPS);
#pragma unroll
  for (int e = 0; e < XH; ++e) {
    const int i = threadIdx.x + e * NT;
    if (i < HID / 4)
      ((float4*)xs)[i] = make_float4(xv[e].x * r * gv[e].x, xv[e].y * r * gv[e].y, xv[e].z * r * gv[e].z,
                                     xv[e].w * r * gv[e].w);
  }
  __syncthreads();
}

// the rows this tile adds to (x[r0 .. r0 + n)), fetched with its input so the epilogue has no dependent load;
// fuse_mlp: plus the same rows of the MLP accumulator, which are zeroed for the next MLP once read
__device__ __forceinline__ void residual_rows(const float* y, int n, float* rs, float* acc = nullptr) {
  for (int i = threadIdx.x; i < n; i += NT) {
    rs[i] = __ldcg(y + i);
    if (acc) { rs[i] += __ldcg(acc + i); __stcg(acc + i, 0.f); }
  }
}

template <typename Pro>
__device__ void plain_input(const float* x, int k, float* xs, Pro wait, const float* y, int n, float* rs) {
  wait();
  residual_rows(y, n, rs);
#pragma unroll 8
  for (int i = threadIdx.x; i < k / 4; i += NT) ((float4*)xs)[i] = __ldcg((const float4*)x + i);
  __syncthreads();
}

// partial (o, m, l) records of attention: HD fp32 o (or, PART16, HD fp16 o / l), then m and l, 16-byte aligned.
// PART16 halves the bytes every output-projection block reads in the combine (all heads' records, from L2); its
// rounding (2^-11 relative) is below the bf16 KV cache's own (2^-8).
#define RHEAD (PART16 ? HD / 2 : HD)
#define RSTRIDE (RHEAD + 4)
__device__ __forceinline__ float h2f(unsigned h) {
  float f;
  const unsigned short b = (unsigned short)(h & 0xffffu);
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(b));
  return f;
}
__device__ __forceinline__ void st_f16(void* p, float v) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  asm volatile("st.global.cg.u16 [%0], %1;" :: "l"(p), "h"(h) : "memory");
}

// flash-decoding combine: attention output of every head from its CHUNKS partial records, in one round of L2
// loads: each thread fetches its 4 output dims of every chunk and its head's (m, l) pairs and weighs the chunks
// itself (a head's threads repeat a few exps instead of waiting for a second round trip, which costs ~1 us while
// the other SMs saturate memory)
__device__ __forceinline__ void combine_heads(const float* part, float* xs, int items) {
  for (int i = threadIdx.x; i < items; i += NT) {
    const int h = (4 * i) / HD, d = 4 * i - h * HD;
    const float* p = part + (long long)h * CHUNKS * RSTRIDE;
    float4 o[CHUNKS];
    float2 ml[CHUNKS];
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
#if PART16
      const uint2 u = __ldcg((const uint2*)(p + c * RSTRIDE + d / 2));
      o[c] = make_float4(h2f(u.x & 0xffffu), h2f(u.x >> 16), h2f(u.y & 0xffffu), h2f(u.y >> 16));
#else
      o[c] = __ldcg((const float4*)(p + c * RSTRIDE + d));
#endif
      ml[c] = __ldcg((const float2*)(p + c * RSTRIDE + RHEAD));
    }
    float m = -3.0e38f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) m = fmaxf(m, ml[c].x);
    float den = 0.f;
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      // PART16 records hold o / l (normalised, so fp16's range suffices): weigh them by l
      const float f = PART16 ? __expf(ml[c].x - m) * ml[c].y : __expf(ml[c].x - m);
      den = PART16 ? den + f : fmaf(f, ml[c].y, den);
      sum.x = fmaf(f, o[c].x, sum.x); sum.y = fmaf(f, o[c].y, sum.y);
      sum.z = fmaf(f, o[c].z, sum.z); sum.w = fmaf(f, o[c].w, sum.w);
    }
    const float inv = 1.f / den;
    ((float4*)xs)[i] = make_float4(sum.x * inv, sum.y * inv, sum.z * inv, sum.w * inv);
  }
}

template <typename Pro>
__device__ void combined_input(const float* part, float* xs, Pro wait, const float* y, int n, float* rs,
                               float* acc) {
  wait();
  residual_rows(y, n, rs, acc);
  combine_heads(part, xs, QDIM / 4);
  __syncthreads();
}

// split_o: rows [0, n) of one KV-head group's slice of the output projection (n x GQ, contiguous), added into
// x's rows with vector-free float reductions. The tile is small (64 KB at 1B), so every thread issues OV 16-byte
// loads before the wait (the whole tile in flight at 16 warps); a slot is reissued for the next round as soon as
// it is consumed. Consecutive threads read consecutive vectors of a row, OSEG lanes per row, reduced by shuffles.
// The tile combines only its group's attention chunks, and (fuse_mlp) moves its share of the previous MLP's sum
// from the accumulator into x (both adds commute with the other tiles' adds).
#define GQ (GROUP * HD)
#define OKV (GQ / VEC)
#define OSEG (OKV < 32 ? OKV : 32)
#define OV 8
// no "memory" clobber: a clobber makes every red a compiler barrier, so the next row's shared-memory loads wait
// behind it and a tile's epilogue becomes one chain of dependent latencies (~1 us per output-projection tile).
// The reds are ordered for other blocks by the signal's release after the task, which stays after them (volatile).
__device__ __forceinline__ void red_add1(float* p, float a) {
  asm volatile("red.relaxed.gpu.global.add.f32 [%0], %1;" :: "l"(p), "f"(a));
}

// a KV-head group's combine (GQ / 4 items of 4 dims): CQ consecutive lanes per item, each loading and weighing
// CHUNKS / CQ chunks, their maxima and sums met by shuffles; a quarter of combine_heads' dependent exp chain
#define CQ (CHUNKS < 4 ? CHUNKS : 4)
#define CPT (CHUNKS / CQ)
__device__ void combine_group(const float* part, float* xs) {
  for (int base = 0; base < (GQ / 4) * CQ; base += NT) {   // a uniform trip count: every lane reaches the shuffles
    const int idx = base + threadIdx.x, i = idx / CQ, q = idx % CQ;
    const bool on = i < GQ / 4;
    const int h = on ? (4 * i) / HD : 0, d = on ? 4 * i - h * HD : 0;
    const float* p = part + ((long long)h * CHUNKS + q * CPT) * RSTRIDE;
    float4 o[CPT];
    float2 ml[CPT];
#pragma unroll
    for (int c = 0; c < CPT; ++c) {
      if (!on) { o[c] = make_float4(0.f, 0.f, 0.f, 0.f); ml[c] = make_float2(-3.0e38f, 0.f); continue; }
#if PART16
      const uint2 u = __ldcg((const uint2*)(p + c * RSTRIDE + d / 2));
      o[c] = make_float4(h2f(u.x & 0xffffu), h2f(u.x >> 16), h2f(u.y & 0xffffu), h2f(u.y >> 16));
#else
      o[c] = __ldcg((const float4*)(p + c * RSTRIDE + d));
#endif
      ml[c] = __ldcg((const float2*)(p + c * RSTRIDE + RHEAD));
    }
    float m = -3.0e38f;
#pragma unroll
    for (int c = 0; c < CPT; ++c) m = fmaxf(m, ml[c].x);
#pragma unroll
    for (int s = 1; s < CQ; s <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, s));
    float den = 0.f;
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int c = 0; c < CPT; ++c) {
      const float f = PART16 ? __expf(ml[c].x - m) * ml[c].y : __expf(ml[c].x - m);
      den = PART16 ? den + f : fmaf(f, ml[c].y, den);
      sum.x = fmaf(f, o[c].x, sum.x); sum.y = fmaf(f, o[c].y, sum.y);
      sum.z = fmaf(f, o[c].z, sum.z); sum.w = fmaf(f, o[c].w, sum.w);
    }
#pragma unroll
    for (int s = 1; s < CQ; s <<= 1) {
      den += __shfl_xor_sync(0xffffffffu, den, s);
      sum.x += __shfl_xor_sync(0xffffffffu, sum.x, s); sum.y += __shfl_xor_sync(0xffffffffu, sum.y, s);
      sum.z += __shfl_xor_sync(0xffffffffu, sum.z, s); sum.w += __shfl_xor_sync(0xffffffffu, sum.w, s);
    }
    if (on && q == 0) {
      const float inv = 1.f / den;
      ((float4*)xs)[i] = make_float4(sum.x * inv, sum.y * inv, sum.z * inv, sum.w * inv);
    }
  }
}
template <typename Pro>
__device__ void group_tile(const Task& t, const w_t* W, float* A, float* xs, Pro wait) {
  const int tid = threadIdx.x, lane = tid & 31, total = (int)t.n * OKV;
  const uint4* w = (const uint4*)(W + t.w);
  uint4 v[OV];
#pragma unroll
  for (int j = 0; j < OV; ++j) {
    const int i = tid + j * NT;
    v[j] = i < total ? ld_stream(w + i) : make_uint4(0, 0, 0, 0);
  }
  wait();
  const int nf = (int)t.aux2;
  float fold = 0.f;
  if (t.aux0 >= 0 && tid < nf) fold = __ldcg(A + t.aux0 + tid);
  combine_group(A + t.in + t.aux3 * GROUP * CHUNKS * RSTRIDE, xs);
  if (t.aux0 >= 0)
    for (int i = tid; i < nf; i += NT) {
      const float f = i == tid ? fold : __ldcg(A + t.aux0 + i);
      red_add1(A + t.aux1 + i, f);
      __stcg(A + t.aux0 + i, 0.f);
    }
  __syncthreads();
  float* y = A + t.out;
  for (int base = 0; base < total; base += OV * NT) {
    float p[OV];   // the OV rows' dots, then their shuffle trees interleaved: OV independent chains, not one long one
#pragma unroll
    for (int j = 0; j < OV; ++j) {
      const int i = base + tid + j * NT, ni = i + OV * NT;
      const uint4 wv = v[j];
      v[j] = ni < total ? ld_stream(w + ni) : make_uint4(0, 0, 0, 0);
      p[j] = i < total ? dotv(wv, xs + (i % OKV) * VEC, 0.f) : 0.f;
    }
#if OSEG == 32 && OV == 8
    // a transposing reduction: at each level a lane keeps half of its rows and swaps the other half with its
    // partner, so 8 rows take 4 + 2 + 1 + 1 + 1 = 9 shuffles (not 8 x 5 = 40), and lane 4r ends with row r's sum:
    // 8 lanes issue the warp's 8 reductions at once. 1B: 801.0 -> 793.6 us per token (three alternating runs each;
    // the tile's epilogue was ~0.8 us of its 2 us after the inputs, bench/megakernel_stamps.py)
    const bool h16 = lane & 16, h8 = lane & 8, h4 = lane & 4;
    float q[4], r2[2];
#pragma unroll
    for (int k = 0; k < 4; ++k) q[k] = (h16 ? p[k + 4] : p[k]) + __shfl_xor_sync(0xffffffffu, h16 ? p[k] : p[k + 4], 16);
#pragma unroll
    for (int k = 0; k < 2; ++k) r2[k] = (h8 ? q[k + 2] : q[k]) + __shfl_xor_sync(0xffffffffu, h8 ? q[k] : q[k + 2], 8);
    float sum = (h4 ? r2[1] : r2[0]) + __shfl_xor_sync(0xffffffffu, h4 ? r2[0] : r2[1], 4);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    const int first = base + (tid & ~31) + (lane >> 2) * NT;   // row lane / 4's first vector in this warp's slice
    if ((lane & 3) == 0 && first < total) red_add1(y + first / OKV, sum);
#else
#pragma unroll
    for (int o = OSEG / 2; o > 0; o >>= 1)
#pragma unroll
      for (int j = 0; j < OV; ++j) p[j] += __shfl_xor_sync(0xffffffffu, p[j], o);
#pragma unroll
    for (int j = 0; j < OV; ++j) {
      const int i = base + tid + j * NT;
      if ((lane & (OSEG - 1)) == 0 && i < total) red_add1(y + i / OKV, p[j]);
    }
#endif
  }
}

// Rows [0, n) of M matrices sharing row indices (M = 2: gate and up), k columns each: out(r, acc[M]).
// Each warp walks its rows as one stream of 16-byte loads, UNROLL per lane in flight per matrix and row: a slot's
// next load is issued as soon as the slot is consumed, across row boundaries. The first batch is issued before
// `prologue` (the wait on the producers and the input load), so the weights are already in flight during the sync.
// A tile with fewer row groups than warps (16 rows of the 8192-wide down projection per block) splits k into `seg`
// segments, one warp each, so every warp keeps loads in flight; the partial sums meet in shared memory and are
// added in a fixed order (deterministic).
struct NoTail {
  static constexpr bool on = false;
  __device__ uint4 operator()(int) const { return make_uint4(0, 0, 0, 0); }
};
template <int M, int RR, typename Pro, typename Out, typename Tail = NoTail>
__device__ __forceinline__ void gemv(const w_t* const* W, int n, int k, const float* xs, Pro prologue, Out out,
                                     Tail tail = Tail(), uint4* carry = nullptr) {
  __shared__ float psum[M * WARPS * RR];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kvall = k / VEC, rgroups = (n + RR - 1) / RR;
  int seg = 1;
  while (2 * seg <= WARPS && rgroups * 2 * seg <= WARPS) seg *= 2;
  const int sid = warp % seg, wrow = warp / seg, wstride = WARPS / seg;
  const int k0 = (int)((long long)kvall * sid / seg), kv = (int)((long long)kvall * (sid + 1) / seg);
  const int nb = (kv - k0 + 32 * UNROLL - 1) / (32 * UNROLL);
  const int first = wrow * RR;
  const int groups = first < n ? (n - 1 - first) / (wstride * RR) + 1 : 0;
  const int iters = groups * nb;
  uint4 v[M * RR][UNROLL];
  auto issue = [&](int it) {
    const int g = it / nb, b = it - g * nb;
    const int r = first + g * wstride * RR, base = k0 + b * 32 * UNROLL;
#pragma unroll
    for (int j = 0; j < RR; ++j) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4* row = (const uint4*)(W[m] + (long long)min(r + j, n - 1) * k);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int i = base + u * 32 + lane;
          v[j * M + m][u] = (it < iters && i < kv) ? ld_stream(row + i) : make_uint4(0, 0, 0, 0);
        }
      }
    }
  };
  issue(0);
  prologue();
  float acc[RR][M];
#pragma unroll
  for (int j = 0; j < RR; ++j)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[j][m] = 0.f;
  for (int it = 0; it < iters; ++it) {
    const int g = it / nb, b = it - g * nb;
    const int r = first + g * wstride * RR, base = k0 + b * 32 * UNROLL;
    const int nit = it + 1, ng = nit / nb, nbb = nit - ng * nb;
    const int nr = first + ng * wstride * RR, nbase = k0 + nbb * 32 * UNROLL;
#pragma unroll
    for (int j = 0; j < RR; ++j) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4* nrow = (const uint4*)(W[m] + (long long)min(nr + j, n - 1) * k);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int i = base + u * 32 + lane, ni = nbase + u * 32 + lane;
          const uint4 w = v[j * M + m][u];
          // the last batch's freed slots take the next phase's first loads (Tail), if it has any
          v[j * M + m][u] = (nit < iters && ni < kv) ? ld_stream(nrow + ni)
                          : (Tail::on && nit == iters) ? tail((j * M + m) * UNROLL + u) : make_uint4(0, 0, 0, 0);
          if (i < kv) acc[j][m] = dotv(w, xs + i * VEC, acc[j][m]);
        }
      }
    }
    if (b == nb - 1) {
      // the RR x M row sums reduced together by a transposing shuffle tree (warp_sums_t), then each output lane
      // gathers its row's M sums: RR M = 4 takes 7 shuffles, not 20, and RR lanes write at once
      constexpr int K = RR * M, S = 32 / K;
      float p[K];
#pragma unroll
      for (int q = 0; q < K; ++q) { p[q] = acc[q / M][q % M]; acc[q / M][q % M] = 0.f; }
      const float t = warp_sums_t<K>(p, lane);
      float sum[M];
#pragma unroll
      for (int m = 0; m < M; ++m) sum[m] = M == 1 ? t : __shfl_sync(0xffffffffu, t, (lane & ~(M * S - 1)) + m * S);
      const int j = lane / (M * S);
      if (lane % (M * S) == 0 && r + j < n) {
        if (seg == 1) {
          out(r + j, sum);
        } else {
#pragma unroll
          for (int m = 0; m < M; ++m) psum[((r + j) * M + m) * seg + sid] = sum[m];
        }
      }
    }
  }
  if (Tail::on) {
    if (iters == 0) {
#pragma unroll
      for (int q = 0; q < M * RR * UNROLL; ++q) v[q / UNROLL][q % UNROLL] = tail(q);
    }
#pragma unroll
    for (int q = 0; q < M * RR * UNROLL; ++q) carry[q] = v[q / UNROLL][q % UNROLL];
  }
  if (seg > 1) {
    __syncthreads();
    for (int r = threadIdx.x; r < n; r += NT) {
      float sum[M];
#pragma unroll
      for (int m = 0; m < M; ++m) {
        sum[m] = 0.f;
        for (int q = 0; q < seg; ++q) sum[m] += psum[(r * M + m) * seg + q];
      }
      out(r, sum);
    }
  }
}

// lane 0 of each of the first POLLERS warps spins until the counter reaches target (acquire), then the block goes
// on. A poll is a full L2 round trip (~1 us while the other SMs saturate memory), so one poller notices a completed
// join half a round trip late on average; POLLERS pollers started POLL_GAP_NS apart sample it that much more often.
// The first to see it writes the wait's tag to `seen`, which ends the others. The watchdog turns a never-completing
// wait into status 1 and an early return (abort is set).
__device__ __forceinline__ void block_wait(const int* counter, int target, int* status, int* abort, int tag,
                                           volatile int* seen) {
  const int warp = threadIdx.x >> 5;
  if (counter && warp < POLLERS && (threadIdx.x & 31) == 0) {
    if (POLLERS > 1 && warp) __nanosleep(warp * POLL_GAP_NS);
    const unsigned long long start = now_ns();
    while (*seen != tag) {
      if (ld_acquire(counter) >= target) { *seen = tag; break; }
      if (SPIN_NS > 0) __nanosleep(SPIN_NS);
      if (now_ns() - start > WATCHDOG_NS || *(volatile int*)status) {
        atomicCAS(status, 0, 1);   // the first cause stays: a block that stopped on an uncompiled op (3) is why the others wait
        *abort = 1;
        *seen = tag;
        break;
      }
    }
  }
  __syncthreads();
}

struct Store { float* y; __device__ void operator()(int r, const float* s) const { __stcg(y + r, s[0]); } };
struct Residual { float* y; const float* rs; __device__ void operator()(int r, const float* s) const { __stcg(y + r, rs[r] + s[0]); } };
struct SiluGate { float* y; __device__ void operator()(int r, const float* s) const { __stcg(y + r, s[0] / (1.f + __expf(-s[0])) * s[1]); } };
struct SiluShared { float* y; __device__ void operator()(int r, const float* s) const { y[r] = s[0] / (1.f + __expf(-s[0])) * s[1]; } };

// fuse_mlp: the tile's k-slice of the down projection: its n activations (shared memory) times its n rows of the
// transposed down weights (HID wide, contiguous), added into the accumulator with vector reductions (commuting
// adds: the schedule's accumulate regions). A thread owns VEC columns and every RP-th row with DU loads always in
// flight (a slot is reissued as soon as it is consumed); the RP row groups meet in shared memory first, so each
// column gets one reduction per block.
#define CG (HID / VEC)
// the down projection's first loads, issued in the gate/up's last batch (DOWN_EARLY): its slot q is this thread's
// row rp + q RP of its first column group, so down_accumulate starts with them in flight
struct DownTail {
  const w_t* Wt; int n;
  static constexpr bool on = true;
  __device__ uint4 operator()(int q) const {
    const int RP = NT >= CG ? NT / CG : 1, rp = NT >= CG ? (int)threadIdx.x / CG : 0;
    const int c = NT >= CG ? (int)threadIdx.x % CG : (int)threadIdx.x, r = rp + q * RP;
    return q < DU && r < n ? ld_stream((const uint4*)(Wt + (long long)r * HID) + c) : make_uint4(0, 0, 0, 0);
  }
};
__device__ __forceinline__ void red_add4(float* p, float a, float b, float c, float d) {
  asm volatile("red.relaxed.gpu.global.add.v4.f32 [%0], {%1, %2, %3, %4};"
               :: "l"(p), "f"(a), "f"(b), "f"(c), "f"(d));   // no clobber: as red_add1
}
__device__ void down_accumulate(const w_t* Wt, const float* act, int n, float* acc, float* scratch, int scratch_floats,
                                const uint4* carry = nullptr) {
  const int tid = threadIdx.x;
  const int RP = NT >= CG ? NT / CG : 1, rp = NT >= CG ? tid / CG : 0;
  const bool meet = RP > 1 && RP * HID <= scratch_floats;
  for (int c = NT >= CG ? tid % CG : tid; c < CG; c += NT >= CG ? CG : NT) {
    float a[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) a[v] = 0.f;
    uint4 w[DU];
    const bool carried = carry && c < CG && (NT >= CG || c == (int)threadIdx.x);   // the first column group
#pragma unroll
    for (int u = 0; u < DU; ++u) {
      const int r = rp + u * RP;
      if (carried && u < 2 * UNROLL) w[u] = carry[u];
      else w[u] = r < n ? ld_stream((const uint4*)(Wt + (long long)r * HID) + c) : make_uint4(0, 0, 0, 0);
    }
    for (int r0 = rp; r0 < n; r0 += RP * DU) {
#pragma unroll
      for (int u = 0; u < DU; ++u) {
        const int r = r0 + u * RP, nr = r + RP * DU;
        const uint4 x = w[u];
        w[u] = nr < n ? ld_stream((const uint4*)(Wt + (long long)nr * HID) + c) : make_uint4(0, 0, 0, 0);
        const float s = r < n ? act[r] : 0.f;
#if BF16
        a[0] = fmaf(s, __uint_as_float(x.x << 16), a[0]); a[1] = fmaf(s, __uint_as_float(x.x & 0xffff0000u), a[1]);
        a[2] = fmaf(s, __uint_as_float(x.y << 16), a[2]); a[3] = fmaf(s, __uint_as_float(x.y & 0xffff0000u), a[3]);
        a[4] = fmaf(s, __uint_as_float(x.z << 16), a[4]); a[5] = fmaf(s, __uint_as_float(x.z & 0xffff0000u), a[5]);
        a[6] = fmaf(s, __uint_as_float(x.w << 16), a[6]); a[7] = fmaf(s, __uint_as_float(x.w & 0xffff0000u), a[7]);
#else
        a[0] = fmaf(s, __uint_as_float(x.x), a[0]); a[1] = fmaf(s, __uint_as_float(x.y), a[1]);
        a[2] = fmaf(s, __uint_as_float(x.z), a[2]); a[3] = fmaf(s, __uint_as_float(x.w), a[3]);
#endif
      }
    }
    if (meet) {
#pragma unroll
      for (int v = 0; v < VEC; ++v) scratch[rp * HID + c * VEC + v] = a[v];
    } else {
#pragma unroll
      for (int v = 0; v < VEC; v += 4) red_add4(acc + c * VEC + v, a[v], a[v + 1], a[v + 2], a[v + 3]);
    }
  }
  if (meet) {
    __syncthreads();
    for (int i = tid; i < HID / 4; i += NT) {
      float4 t = ((const float4*)scratch)[i];
      for (int q = 1; q < RP; ++q) {
        const float4 u = ((const float4*)(scratch + q * HID))[i];
        t.x += u.x; t.y += u.y; t.z += u.z; t.w += u.w;
      }
      red_add4(acc + 4 * i, t.x, t.y, t.z, t.w);
    }
  }
}

__device__ unsigned long long* g_trace;   // TRACE builds: 3 timestamps per step (start, wait done, end)
struct Wait { const int* c; int target; int* status; int* abort; unsigned long long* tr; int tag; volatile int* seen;
  __device__ void operator()() const {
    block_wait(c, target, status, abort, tag, seen);
    if (TRACE && tr && threadIdx.x == 0) tr[1] = now_ns();
  } };

// the block's best (value, index) (lowest index on ties), valid in thread 0
__device__ void block_argmax(float& best, int& idx) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ob > best || (ob == best && oi < idx)) { best = ob; idx = oi; }
  }
  __shared__ float bv[32];
  __shared__ int bi[32];
  if ((threadIdx.x & 31) == 0) { bv[threadIdx.x >> 5] = best; bi[threadIdx.x >> 5] = idx; }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int i = 1; i < WARPS; ++i)
      if (bv[i] > best || (bv[i] == best && bi[i] < idx)) { best = bv[i]; idx = bi[i]; }
  __syncthreads();
}

// logits rows plus this tile's argmax (lowest index on ties), left in A for the next step's embedding
template <typename Pro>
__device__ void lm_head(const Task& t, const w_t* W, float* A, const float* xs, Pro prologue) {
  float* logits = A + t.out;
  const w_t* mats[1] = {W + t.w};
  gemv<1, ROWS>(mats, (int)t.n, (int)t.k, xs, prologue, Store{logits});
  __syncthreads();
  float best = -3.0e38f;
  int idx = 0x7fffffff;
  for (int r = threadIdx.x; r < t.n; r += NT) {
    const float v = ldcg(logits + r);
    if (v > best) { best = v; idx = r; }
  }
  block_argmax(best, idx);
  if (threadIdx.x == 0) {
    __stcg(A + t.aux0, best);
    __stcg(A + t.aux0 + 1, (float)(idx + (int)t.aux1));
  }
}

// token (from the host, or the argmax the previous step's LM-head tiles left: one slot per thread, a block-wide
// reduction) -> x = embedding row; fuse_mlp: the MLP accumulator (g >= 0) starts the step at zero
__device__ void embed(const Task& t, const w_t* W, float* A, int token, int epoch) {
  __shared__ int chosen;
#if OVERLAP_LAUNCH
  // the previous step's grid may still be running (its LM head reads x): wait for all of it, its writes visible
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if (token < 0) {
    float best = -3.0e38f;
    int idx = 0x7fffffff;
    for (int s = threadIdx.x; s < t.aux1; s += NT) {
      const float v = ldcg(A + t.aux0 + 2 * s);
      const int i = (int)ldcg(A + t.aux0 + 2 * s + 1);
      if (v > best || (v == best && i < idx)) { best = v; idx = i; }
    }
    block_argmax(best, idx);
    token = idx;
  }
  if (threadIdx.x == 0) {
    chosen = token;
    __stcg(A + t.aux2 + epoch % (int)t.aux3, (float)token);
  }
  __syncthreads();
  const w_t* row = W + t.w + (long long)chosen * t.n;
  for (int i = threadIdx.x; i < t.n / 4; i += NT) __stcg((float4*)(A + t.out) + i, load_w4(row + 4 * i));
  if (t.g >= 0)
    for (int i = threadIdx.x; i < t.n / 4; i += NT) __stcg((float4*)(A + t.g) + i, make_float4(0.f, 0.f, 0.f, 0.f));
}

// fuse_embed: layer 0's QKV tile begins the step. The token is the host's or the argmax the previous step's
// LM-head tiles left (aux0: their (value, index) slots, aux1 of them); its embedding row (w2) is the residual x:
// the tile writes x's float4s [aux4, aux5) and zeroes the same share of the MLP accumulator (aux6 >= 0), the
// tile with aux2 >= 0 records the token, and RMSNorm(row) * g goes to xs. Every tile waits for the previous grid
// (overlap_launch) before it reads the slots or writes x, as the embedding task did. (Waiting instead on a
// counter the previous step's LM-head tiles signal last was measured slower: one poll's round trip.)
template <typename Pro>
__device__ void embed_normed_input(const Task& t, const w_t* W, float* A, int token, int epoch, float* xs,
                                   float* red, Pro wait) {
  __shared__ int picked;
  float4 gv[XH];
#pragma unroll
  for (int e = 0; e < XH; ++e) {
    const int i = threadIdx.x + e * NT;
    gv[e] = i < HID / 4 ? load_w4(W + t.g + 4 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  wait();
#if OVERLAP_LAUNCH
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if (token < 0) {
    float best = -3.0e38f;
    int idx = 0x7fffffff;
    for (int s = threadIdx.x; s < t.aux1; s += NT) {
      const float v = ldcg(A + t.aux0 + 2 * s);
      const int i = (int)ldcg(A + t.aux0 + 2 * s + 1);
      if (v > best || (v == best && i < idx)) { best = v; idx = i; }
    }
    block_argmax(best, idx);
    token = idx;
  }
  if (threadIdx.x == 0) {
    picked = token;
    if (t.aux2 >= 0) __stcg(A + t.aux2 + epoch % (int)t.aux3, (float)token);
  }
  __syncthreads();
  const w_t* row = W + t.w2 + (long long)picked * HID;
  float4 xv[XH];
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < XH; ++e) {
    const int i = threadIdx.x + e * NT;
    xv[e] = i < HID / 4 ? load_w4(row + 4 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
    if (4 * i >= t.aux4 && 4 * i < t.aux5) {
      __stcg((float4*)(A + t.in) + i, xv[e]);
      if (t.aux6 >= 0) __stcg((float4*)(A + t.aux6) + i, make_float4(0.f, 0.f, 0.f, 0.f));
    }
    ss += xv[e].x * xv[e].x + xv[e].y * xv[e].y + xv[e].z * xv[e].z + xv[e].w * xv[e].w;
  }
  const float r = rsqrtf(block_sum(ss, red) / (float)HID + EPS);
#pragma unroll
  for (int e = 0; e < XH; ++e) {
    const int i = threadIdx.x + e * NT;
    if (i < HID / 4)
      ((float4*)xs)[i] = make_float4(xv[e].x * r * gv[e].x, xv[e].y * r * gv[e].y, xv[e].z * r * gv[e].z,
                                     xv[e].w * r * gv[e].w);
  }
  __syncthreads();
}

// attention of the GROUP query heads of KV head aux0 over positions [aux2, min(aux3, pos + 1)): partial
// softmax sums (o, m, l) per head for the combine in the output projection. The task owning `pos` applies RoPE
// to the new K and stores K, V there first. Per block of SUB positions staged in shared memory: one thread per
// (head, position) score, one warp per head for the running max and sum, one thread per (head, dim) output.
#define WPR (HD * (int)sizeof(c_t) / 4)
// staged values: rows padded by 8 words, so the 4 positions a warp's lanes read at once (one per quarter) fall in
// different banks
#define VSTR (WPR + 8)
// scores: two lanes per (head, position), each half of the dot; outputs: a lane per (head, dimension pair,
// quarter of the positions), the quarters (lanes 8 apart) summed by shuffles at the end
#define SPT ((2 * GROUP * SUB + NT - 1) / NT)
#define PPT ((2 * GROUP * HD + NT - 1) / NT)
__device__ __forceinline__ float2 vpair(const unsigned* vst, int j, int pair) {
#if BF16
  const unsigned u = vst[j * VSTR + pair];
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
#else
  return *(const float2*)(vst + j * VSTR + 2 * pair);
#endif
}

#if ATTN_WARP
// ATTN_WARP: each warp owns one query head and a slice of the staged positions end to end (scores by lane pairs,
// its own running max and sum, its HD outputs over DPL dims per lane), so no warp idles and the staged positions
// cost no __syncthreads (a chunk longer than SUB restages between two); the warps' partial (m, l, o) meet in
// shared memory once, after the last block.
#define PSL (WARPS / GROUP)
#define DPL (HD / 32)
template <typename Stage>
__device__ __forceinline__ void attention_warps(const Task& t, float* A, int p0, int p1, int kvh, int chunk,
                                                const float* qs, const unsigned* kst, const unsigned* vst, float* ws,
                                                Stage stage_kv) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = warp % GROUP, sl = warp / GROUP, jj = lane >> 1, half = lane & 1;
  const float scale = rsqrtf((float)HD);
  const float* q = qs + g * HD;
  float m = -3.0e38f, l = 0.f, o[DPL];
#pragma unroll
  for (int e = 0; e < DPL; ++e) o[e] = 0.f;
  for (int s0 = p0; s0 < p1; s0 += SUB) {
    const int cnt = min(SUB, p1 - s0);
    if (s0 > p0) {
      __syncthreads();   // every warp is done with the previous block
      stage_kv(s0, cnt);
      __syncthreads();
    }
    const int per = (cnt + PSL - 1) / PSL, jb = sl * per, je = min(cnt, jb + per);
    for (int js = jb; js < je; js += 16) {
      const int j = js + jj;
      const bool valid = j < je;
      float a0 = 0.f, a1 = 0.f;
      if (valid) {
        const unsigned* kr = kst + j * (WPR + 1);
        const int w0 = half * (WPR / 2);
#pragma unroll 4
        for (int w = w0; w < w0 + WPR / 2; ++w) {
          const unsigned x = kr[w];
#if BF16
          const float2 qq = *(const float2*)(q + 2 * w);
          a0 = fmaf(qq.x, __uint_as_float(x << 16), a0);
          a1 = fmaf(qq.y, __uint_as_float(x & 0xffff0000u), a1);
#else
          if (w & 1) a1 = fmaf(q[w], __uint_as_float(x), a1); else a0 = fmaf(q[w], __uint_as_float(x), a0);
#endif
        }
      }
      float sc = a0 + a1;
      sc += __shfl_xor_sync(0xffffffffu, sc, 1);
      sc = valid ? sc * scale : -3.0e38f;
      float mx = sc;
#pragma unroll
      for (int k = 2; k < 32; k <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, k));
      const float mn = fmaxf(m, mx), corr = __expf(m - mn);
      const float p = valid ? __expf(sc - mn) : 0.f;
      float sum = half ? 0.f : p;
#pragma unroll
      for (int k = 2; k < 32; k <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, k);
      l = l * corr + sum;
      m = mn;
#pragma unroll
      for (int e = 0; e < DPL; ++e) o[e] *= corr;
      const int nj = min(16, je - js);
      for (int u = 0; u < nj; ++u) {
        const float pj = __shfl_sync(0xffffffffu, p, 2 * u);
        const unsigned* vr = vst + (js + u) * VSTR;
#if BF16
#if DPL == 1
        const unsigned x = vr[lane >> 1];
        o[0] = fmaf(pj, __uint_as_float((lane & 1) ? (x & 0xffff0000u) : (x << 16)), o[0]);
#else
#pragma unroll
        for (int e = 0; e < DPL; e += 2) {
          const unsigned x = vr[(lane * DPL + e) / 2];
          o[e] = fmaf(pj, __uint_as_float(x << 16), o[e]);
          o[e + 1] = fmaf(pj, __uint_as_float(x & 0xffff0000u), o[e + 1]);
        }
#endif
#else
#pragma unroll
        for (int e = 0; e < DPL; ++e) o[e] = fmaf(pj, __uint_as_float(vr[lane * DPL + e]), o[e]);
#endif
      }
    }
  }
  // the warps' partials: ws[warp] = (o[HD], m, l); one barrier, then a thread per (head, dim) combines its head's
  // PSL slices
  float* mine = ws + warp * (HD + 2);
#pragma unroll
  for (int e = 0; e < DPL; ++e) mine[lane * DPL + e] = o[e];
  if (lane == 0) { mine[HD] = m; mine[HD + 1] = l; }
  __syncthreads();
  float* part = A + t.out;
  for (int i = tid; i < GROUP * HD; i += NT) {
    const int hg = i / HD, d = i - hg * HD;
    float M = -3.0e38f;
#pragma unroll
    for (int s = 0; s < PSL; ++s) M = fmaxf(M, ws[(s * GROUP + hg) * (HD + 2) + HD]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int s = 0; s < PSL; ++s) {
      const float* w = ws + (s * GROUP + hg) * (HD + 2);
      const float f = __expf(w[HD] - M);
      L = fmaf(f, w[HD + 1], L);
      O = fmaf(f, w[d], O);
    }
    float* rec = part + ((long long)(kvh * GROUP + hg) * CHUNKS + chunk) * RSTRIDE;
#if PART16
    st_f16((unsigned short*)rec + d, L > 0.f ? O / L : 0.f);
#else
    __stcg(rec + d, O);
#endif
    if (d == 0) {
      __stcg(rec + RHEAD, p1 > p0 ? M : -3.0e38f);
      __stcg(rec + RHEAD + 1, L);
    }
  }
}
#endif

template <typename Pro>
__device__ void attention(const Task& t, float* A, c_t* C, int pos, float* sm, Pro wait) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int kvh = (int)t.aux0, chunk = (int)t.aux1, p0 = (int)t.aux2, p1 = min((int)t.aux3, pos + 1);
  c_t* K = C + t.w;   // this task's chunk of the cache: positions [p0, aux3)
  c_t* V = C + t.w2;
  float* qs = sm;
  unsigned* kst = (unsigned*)(qs + GROUP * HD);
  unsigned* vst = kst + SUB * (WPR + 1);
  float* sc = (float*)(vst + SUB * VSTR);
  float* stat = sc + GROUP * SUB;   // m[GROUP], l[GROUP], corr[GROUP]
  // the cached keys and values do not depend on this step: the first SUB positions go to shared memory and the
  // rest to L2 while the block waits for the QKV projection (the new position is patched in after the wait)
  auto stage_kv = [&](int s0, int cnt) {
    const uint4* kg = (const uint4*)(K + (long long)(s0 - p0) * HD);
    const uint4* vg = (const uint4*)(V + (long long)(s0 - p0) * HD);
    for (int i = tid; i < cnt * WPR / 4; i += NT) {
      const uint4 a = __ldcg(kg + i), b = __ldcg(vg + i);
      const int j = (i * 4) / WPR, w = (i * 4) % WPR;
      unsigned* kd = kst + j * (WPR + 1) + w;   // padded rows: a thread per position reads without bank conflicts
      kd[0] = a.x; kd[1] = a.y; kd[2] = a.z; kd[3] = a.w;
      *(uint4*)(vst + j * VSTR + w) = b;
    }
  };
  // RoPE's rotation at `pos` does not depend on this step's projections either: computed before the wait
  float* rope = stat + 3 * GROUP;   // cos[PAIRS], sin[PAIRS]
  const float* inv = A + t.g;
  if (tid < PAIRS) sincosf((float)pos * inv[tid], &rope[PAIRS + tid], &rope[tid]);
  if (p1 > p0) {
    if (tid == 0 && p1 - p0 > SUB) {
      const long long bytes = ((long long)(p1 - p0 - SUB) * HD * (long long)sizeof(c_t) + 15) / 16 * 16;
      prefetch_l2(K + (long long)SUB * HD, bytes);
      prefetch_l2(V + (long long)SUB * HD, bytes);
    }
    stage_kv(p0, min(SUB, p1 - p0));
  }
  wait();
  // the queries and (the task owning `pos`) the new key and value, one index space over the threads so all their
  // L2 loads are in flight together: the owner is every layer's last attention task otherwise
  const float* qkv = A + t.in;
  const bool owner = pos >= p0 && pos < t.aux3;
  const float* kn = qkv + QDIM + kvh * HD;
  const float* vn = qkv + QDIM + NKV * HD + kvh * HD;
  for (int i = tid; i < GROUP * HD + (owner ? HD : 0); i += NT) {
    if (i < GROUP * HD) {
      const int h = kvh * GROUP + i / HD, d = i % HD, p = d % PAIRS;
      const float cs = rope[p], sn = rope[PAIRS + p];
      const float x = ldcg(qkv + h * HD + d);
      const float rot = d < PAIRS ? -ldcg(qkv + h * HD + d + PAIRS) : ldcg(qkv + h * HD + d - PAIRS);
      qs[i] = x * cs + rot * sn;
    } else {
      const int d = i - GROUP * HD, p = d % PAIRS;
      const float cs = rope[p], sn = rope[PAIRS + p];
      const float rot = d < PAIRS ? -ldcg(kn + d + PAIRS) : ldcg(kn + d - PAIRS);
      const c_t kc = f2c(ldcg(kn + d) * cs + rot * sn), vc = f2c(ldcg(vn + d));
      K[(long long)(pos - p0) * HD + d] = kc;
      V[(long long)(pos - p0) * HD + d] = vc;
      if (pos - p0 < SUB) {   // the staged copy of the first SUB positions holds the old value there
        ((c_t*)(kst + (pos - p0) * (WPR + 1)))[d] = kc;
        ((c_t*)(vst + (pos - p0) * VSTR))[d] = vc;
      }
    }
  }
  if (tid < GROUP) { stat[tid] = -3.0e38f; stat[GROUP + tid] = 0.f; }
  __syncthreads();
#if ATTN_WARP
  attention_warps(t, A, p0, p1, kvh, chunk, qs, kst, vst, rope + HD, stage_kv);
  return;
#endif
  // each lane's item of the output: (head g, dimension pair, quarter q of the positions); warps hold 8 pairs
  float2 o[PPT];
#pragma unroll
  for (int e = 0; e < PPT; ++e) o[e] = make_float2(0.f, 0.f);
  const float scale = rsqrtf((float)HD);
  for (int s0 = p0; s0 < p1; s0 += SUB) {
    const int cnt = min(SUB, p1 - s0);
    if (s0 > p0) {
      stage_kv(s0, cnt);
      __syncthreads();
    }
#pragma unroll
    for (int e = 0; e < SPT; ++e) {   // uniform trip count: every lane reaches the shuffle
      const int idx = tid + e * NT, item = idx >> 1, half = idx & 1;
      const int g = item / cnt, j = item - g * cnt;
      float a0 = 0.f, a1 = 0.f;
      if (g < GROUP) {
        const unsigned* kr = kst + j * (WPR + 1);
        const float* q = qs + g * HD;
        const int w0 = half * (WPR / 2), w1 = half ? WPR : WPR / 2;
#pragma unroll 4
        for (int w = w0; w < w1; ++w) {
          const unsigned x = kr[w];
#if BF16
          const float2 qq = *(const float2*)(q + 2 * w);
          a0 = fmaf(qq.x, __uint_as_float(x << 16), a0);
          a1 = fmaf(qq.y, __uint_as_float(x & 0xffff0000u), a1);
#else
          if (w & 1) a1 = fmaf(q[w], __uint_as_float(x), a1); else a0 = fmaf(q[w], __uint_as_float(x), a0);
#endif
        }
      }
      float acc = a0 + a1;
      acc += __shfl_xor_sync(0xffffffffu, acc, 1);
      if (g < GROUP && !half) sc[g * SUB + j] = acc * scale;
    }
    __syncthreads();
    for (int g = warp; g < GROUP; g += WARPS) {
      float mx = -3.0e38f;
      for (int j = lane; j < cnt; j += 32) mx = fmaxf(mx, sc[g * SUB + j]);
      mx = warp_max(mx);
      const float mold = stat[g], mn = fmaxf(mold, mx);
      float sum = 0.f;
      for (int j = lane; j < cnt; j += 32) {
        const float pr = __expf(sc[g * SUB + j] - mn);
        sc[g * SUB + j] = pr;
        sum += pr;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float corr = __expf(mold - mn);
        stat[2 * GROUP + g] = corr;
        stat[GROUP + g] = stat[GROUP + g] * corr + sum;
        stat[g] = mn;
      }
    }
    __syncthreads();
#pragma unroll
    for (int e = 0; e < PPT; ++e) {
      const int idx = tid + e * NT, pg = (idx >> 5) * 8 + (idx & 7), qtr = (idx >> 3) & 3;
      const int g = pg / (HD / 2), pair = pg - g * (HD / 2);
      if (g < GROUP) {
        const float corr = stat[2 * GROUP + g];
        float2 acc = make_float2(o[e].x * corr, o[e].y * corr);
        const float* pr = sc + g * SUB;
#pragma unroll 4
        for (int j = qtr; j < cnt; j += 4) {
          const float2 v = vpair(vst, j, pair);
          acc.x = fmaf(pr[j], v.x, acc.x);
          acc.y = fmaf(pr[j], v.y, acc.y);
        }
        o[e] = acc;
      }
    }
    __syncthreads();
  }
  float* part = A + t.out;
#pragma unroll
  for (int e = 0; e < PPT; ++e) {
    const int idx = tid + e * NT, pg = (idx >> 5) * 8 + (idx & 7), qtr = (idx >> 3) & 3;
    const int g = pg / (HD / 2), pair = pg - g * (HD / 2);
    float2 v = o[e];   // the four quarters of a pair sit in lanes 8 apart
    v.x += __shfl_xor_sync(0xffffffffu, v.x, 8); v.y += __shfl_xor_sync(0xffffffffu, v.y, 8);
    v.x += __shfl_xor_sync(0xffffffffu, v.x, 16); v.y += __shfl_xor_sync(0xffffffffu, v.y, 16);
    if (g < GROUP && qtr == 0) {
      float* rec = part + ((long long)(kvh * GROUP + g) * CHUNKS + chunk) * RSTRIDE;
      const int d = 2 * pair;
#if PART16
      const float l = stat[GROUP + g], inv = l > 0.f ? 1.f / l : 0.f;
      st_f16((unsigned short*)rec + d, v.x * inv);
      st_f16((unsigned short*)rec + d + 1, v.y * inv);
#else
      __stcg(rec + d, v.x);
      __stcg(rec + d + 1, v.y);
#endif
    }
  }
  if (tid < GROUP) {
    float* dst = part + ((long long)(kvh * GROUP + tid) * CHUNKS + chunk) * RSTRIDE;
    __stcg(dst + RHEAD, p1 > p0 ? stat[tid] : -3.0e38f);
    __stcg(dst + RHEAD + 1, stat[GROUP + tid]);
  }
}

#define ATTN_FLOATS (GROUP * HD + SUB * (WPR + 1) + SUB * VSTR + GROUP * SUB + 3 * GROUP + HD + \
                     (ATTN_WARP ? WARPS * (HD + 2) : 0))
#define SMEM_FLOATS (KMAX > ATTN_FLOATS ? KMAX : ATTN_FLOATS)

__device__ void prefetch_task(const Task& t, const w_t* W) {
  if (PF_BYTES <= 0 || t.op < 1 || t.op == 6 || t.op > 11) return;
  const long long bytes = t.n * t.k * (long long)sizeof(w_t);
  if (t.op == 3 || t.op == 9) {
    prefetch_l2(W + t.w, min(bytes, (long long)PF_BYTES / 2));
    prefetch_l2(W + t.w2, min(bytes, (long long)PF_BYTES / 2));
  } else {
    prefetch_l2(W + t.w, min(bytes, (long long)PF_BYTES));
  }
}

// one task; `wait` (a Wait functor, possibly on no counter) runs after the task's first weight loads are issued
__device__ bool run_task(const Task& t, const w_t* W, float* A, c_t* C, int token, int pos, int epoch, float* xs,
                         float* red, float* rs, Wait wait) {
  const w_t* mats[2] = {W + t.w, W + t.w2};
  const int n = (int)t.n, k = (int)t.k;
  switch ((int)t.op) {
#if OPS_USED & (1 << 0)
  case 0: wait(); embed(t, W, A, token, epoch); break;
#endif
#if OPS_USED & (1 << 1)
  case 1: gemv<1, ROWS>(mats, n, k, xs, [&] { normed_input(A + t.in, nullptr, W + t.g, xs, red, wait); }, Store{A + t.out}); break;
#endif
#if OPS_USED & (1 << 2)
  case 2: lm_head(t, W, A, xs, [&] { normed_input(A + t.in, nullptr, W + t.g, xs, red, wait); }); break;
#endif
#if OPS_USED & (1 << 3)
  case 3: gemv<2, 1>(mats, n, k, xs, [&] { normed_input(A + t.in, nullptr, W + t.g, xs, red, wait); }, SiluGate{A + t.out}); break;
#endif
#if OPS_USED & (1 << 4)
  case 4: gemv<1, ROWS>(mats, n, k, xs, [&] { plain_input(A + t.in, k, xs, wait, A + t.out, n, rs); }, Residual{A + t.out, rs}); break;
#endif
#if OPS_USED & (1 << 5)
  case 5: gemv<1, ROWS>(mats, n, k, xs, [&] { combined_input(A + t.in, xs, wait, A + t.out, n, rs, nullptr); }, Residual{A + t.out, rs}); break;
#endif
#if OPS_USED & (1 << 6)
  case 6: attention(t, A, C, pos, xs, wait); break;
#endif
  // fuse_mlp ops: the accumulator rides in aux0 (7, 8: at the tile's rows for 8) or aux2 (10); 9 adds into it
#if OPS_USED & (1 << 7)
  case 7: gemv<1, ROWS>(mats, n, k, xs, [&] { normed_input(A + t.in, A + t.aux0, W + t.g, xs, red, wait); }, Store{A + t.out}); break;
#endif
#if OPS_USED & (1 << 8)
  case 8: gemv<1, ROWS>(mats, n, k, xs, [&] { combined_input(A + t.in, xs, wait, A + t.out, n, rs, A + t.aux0); }, Residual{A + t.out, rs}); break;
#endif
#if OPS_USED & (1 << 9)
  case 9:
#if DOWN_EARLY
  {
    uint4 carry[2 * UNROLL];
    gemv<2, 1>(
        mats, n, k, xs, [&] { normed_input(A + t.in, nullptr, W + t.g, xs, red, wait); }, SiluShared{rs},
        DownTail{W + t.aux0, n}, carry);
    __syncthreads();
    down_accumulate(W + t.aux0, rs, n, A + t.out, xs, SMEM_FLOATS, carry);
  }
#else
    gemv<2, 1>(
        mats, n, k, xs, [&] { normed_input(A + t.in, nullptr, W + t.g, xs, red, wait); }, SiluShared{rs});
    __syncthreads();
    down_accumulate(W + t.aux0, rs, n, A + t.out, xs, SMEM_FLOATS);
#endif
    break;
#endif
#if OPS_USED & (1 << 10)
  case 10: lm_head(t, W, A, xs, [&] { normed_input(A + t.in, A + t.aux2, W + t.g, xs, red, wait); }); break;
#endif
#if OPS_USED & (1 << 11)
  case 11: group_tile(t, W, A, xs, wait); break;
#endif
#if OPS_USED & (1 << 12)
  case 12: gemv<1, ROWS>(mats, n, k, xs, [&] { embed_normed_input(t, W, A, token, epoch, xs, red, wait); }, Store{A + t.out}); break;
#endif
  default: return false;   // an op this build was not compiled for (other genes)
  }
  return true;
}

extern "C" __global__ void __launch_bounds__(NT) megakernel(
    const w_t* __restrict__ W, float* A, c_t* C, const long long* __restrict__ tasks, const int* __restrict__ steps,
    const int* __restrict__ prog, int* counters, int* status, int token, int pos, int epoch) {
  __shared__ __align__(16) float xs[SMEM_FLOATS];
  __shared__ float red[WARPS];
  __shared__ float rs[HID];
  __shared__ int abort_flag;
  __shared__ volatile int poll_seen;
  if (threadIdx.x == 0) { abort_flag = 0; poll_seen = -1; }
#if OVERLAP_LAUNCH
  // the next step's grid may launch now: its blocks take SMs as these exit (launch_overlap_safe says why it can)
  asm volatile("griddepcontrol.launch_dependents;");
#endif
  __syncthreads();
  const int b = blockIdx.x, end = prog[b + 1];
  for (int i = prog[b]; i < end; ++i) {
    int kind = steps[3 * i], a = steps[3 * i + 1], n = steps[3 * i + 2];
    unsigned long long* tr = TRACE ? g_trace + 3LL * i : nullptr;
    if (TRACE && threadIdx.x == 0) tr[0] = now_ns();
    Wait wait{nullptr, 0, status, &abort_flag, nullptr, i, &poll_seen};
    if (kind == 2) {  // a wait followed by a run: the run issues its first loads, then waits (acquire)
      wait = Wait{counters + a, n * epoch, status, &abort_flag, nullptr, i, &poll_seen};
      if (i + 1 < end && steps[3 * (i + 1)] == 0) {
        ++i;
        kind = 0;
        a = steps[3 * i + 1];
        if (TRACE) { wait.tr = tr; tr[2] = 0ULL; }
      } else {
        wait();
        if (abort_flag) return;
        continue;
      }
    }
    if (kind == 0) {
      const Task t = *(const Task*)(tasks + 16LL * a);
      if (threadIdx.x == 0 && wait.c) prefetch_task(t, W);
      if (!run_task(t, W, A, C, token, pos, epoch, xs, red, rs, wait)) {
        if (threadIdx.x == 0) atomicExch(status, 3);
        return;
      }
      __syncthreads();
      if (TRACE && threadIdx.x == 0) tr[2] = now_ns();
      if (abort_flag) return;
    } else if (kind == 1) {  // signal: release
      __syncthreads();
      if (threadIdx.x == 0) red_release(counters + a, n);
    } else {  // grid barriers are not part of the streaming lowering
      if (threadIdx.x == 0) atomicExch(status, 2);
      return;
    }
  }
}
"""
