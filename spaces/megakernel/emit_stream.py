"""CUDA source of the streaming megakernel: one persistent launch runs a certified `stream` schedule.

The source depends only on the model's shape and the kernel genes (spaces/megakernel/stream.py); the schedule
itself (task descriptors, each block's steps) is uploaded as tables, so one compiled kernel serves every placement.
Hardware facts it relies on:
- weights are streamed with 16-byte `ld.global.nc` loads, `unroll` of them in flight per lane and row, so each SM
  keeps tens of KB in flight (Little's law: HBM3 at ~25 GB/s per SM and ~1 us latency under load);
- activations written by other blocks during the launch are read with `ld.global.cg` (L2), never a stale L1 line;
- a signal is `__syncthreads`, `__threadfence`, then one atomic add (release); a wait spins on `ld.acquire.gpu`;
  counters only grow across launches (a launch waits for count x epoch), so nothing is reset between steps;
- while a block waits, `cp.async.bulk.prefetch.L2` (sm_90) pulls the first `prefetch_kb` of its next task's weights
  into L2, so the wait's latency is spent moving bytes;
- a wait that spins past `WATCHDOG_NS` sets the status word and returns: a bad schedule fails, it never hangs.

Kernel: megakernel(W, A, C, tasks, steps, prog, counters, status, token, pos, epoch) with W the weight arena
(bf16 or fp32), A the float32 activation arena, C the KV-cache arena, tasks int64[n][12], steps int32[m][3].
"""

from __future__ import annotations

from spaces.megakernel.lower import ModelDims
from spaces.megakernel.stream import KernelGenes

OP_CODES = {"embed_argmax": 0, "norm_matvec": 1, "norm_matvec_argmax": 2, "norm_gate_up": 3, "matvec_residual": 4,
            "combine_matvec_residual": 5, "attention_partial": 6}
WATCHDOG_NS = 2_000_000_000
SUB_POSITIONS = 64   # KV positions staged in shared memory at a time by an attention task


def emit_stream_cuda(d: ModelDims, genes: KernelGenes, dtype: str = "bfloat16") -> str:
    """Kernel source for model `d`, kernel `genes`, weights and KV cache in `dtype` (bfloat16 or float32)."""
    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype {dtype!r}: use bfloat16 or float32")
    bf16 = dtype == "bfloat16"
    chunks = max(1, min(genes.chunks, d.max_positions))
    kmax = max(d.hidden, d.intermediate, d.heads * d.head_dim)
    header = f"""// evoforge streaming megakernel: {dtype} weights, fp32 accumulation
// model: hidden {d.hidden}, intermediate {d.intermediate}, layers {d.layers}, heads {d.heads}/{d.kv_heads},
// head_dim {d.head_dim}, vocab {d.vocab}, KV length {d.max_positions}; genes {genes.as_dict()}
#define WARPS {genes.warps}
#define NT (WARPS * 32)
#define UNROLL {genes.unroll}
#define ROWS {genes.rows}
#define PF_BYTES {genes.prefetch_kb * 1024}
#define CHUNKS {chunks}
#define HID {d.hidden}
#define NH {d.heads}
#define NKV {d.kv_heads}
#define HD {d.head_dim}
#define GROUP {d.heads // d.kv_heads}
#define QDIM {d.heads * d.head_dim}
#define KVLEN {d.max_positions}
#define KMAX {kmax}
#define SUB {SUB_POSITIONS if bf16 else SUB_POSITIONS // 2}
#define EPS {d.eps!r}f
#define WATCHDOG_NS {WATCHDOG_NS}ULL
#define BF16 {1 if bf16 else 0}
"""
    return header + _BODY


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

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}
__device__ __forceinline__ float ldcg(const float* p) { return __ldcg(p); }
__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
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

struct Task { long long op, n, k, w, w2, g, in, out, aux0, aux1, aux2, aux3; };

// x (A + in, length k) -> RMSNorm(x) * g in shared memory
__device__ void normed_input(const float* x, const w_t* g, int k, float* xs, float* red) {
  float ss = 0.f;
  for (int i = threadIdx.x; i < k; i += NT) { float v = ldcg(x + i); xs[i] = v; ss += v * v; }
  const float r = rsqrtf(block_sum(ss, red) / (float)k + EPS);
  for (int i = threadIdx.x; i < k; i += NT) xs[i] = xs[i] * r * w2f(g[i]);
  __syncthreads();
}

__device__ void plain_input(const float* x, int k, float* xs) {
  for (int i = threadIdx.x; i < k; i += NT) xs[i] = ldcg(x + i);
  __syncthreads();
}

// flash-decoding combine: attention output of every head from its CHUNKS partial (o, m, l) triples; first the
// weight of each (head, chunk), then one pass over the partial outputs
__device__ void combined_input(const float* part, float* xs) {
  __shared__ float weight[NH * CHUNKS];
  for (int h = threadIdx.x; h < NH; h += NT) {
    const float* p = part + (long long)h * CHUNKS * (HD + 2);
    float m = -3.0e38f, den = 0.f;
    for (int c = 0; c < CHUNKS; ++c) m = fmaxf(m, ldcg(p + c * (HD + 2) + HD));
    for (int c = 0; c < CHUNKS; ++c) {
      const float f = __expf(ldcg(p + c * (HD + 2) + HD) - m);
      weight[h * CHUNKS + c] = f;
      den += f * ldcg(p + c * (HD + 2) + HD + 1);
    }
    for (int c = 0; c < CHUNKS; ++c) weight[h * CHUNKS + c] /= den;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < QDIM; i += NT) {
    const int h = i / HD, d = i % HD;
    const float* p = part + (long long)h * CHUNKS * (HD + 2) + d;
    float acc = 0.f;
    for (int c = 0; c < CHUNKS; ++c) acc += weight[h * CHUNKS + c] * ldcg(p + c * (HD + 2));
    xs[i] = acc;
  }
  __syncthreads();
}

// rows [0, n) of the k-column matrix at W: out(r, dot(row r, xs)); each warp streams ROWS rows at a time
template <typename Out>
__device__ __forceinline__ void gemv(const w_t* W, int n, int k, const float* xs, Out out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kv = k / VEC;
  for (int r0 = warp * ROWS; r0 < n; r0 += WARPS * ROWS) {
    float acc[ROWS];
#pragma unroll
    for (int j = 0; j < ROWS; ++j) acc[j] = 0.f;
    for (int base = 0; base < kv; base += 32 * UNROLL) {
      uint4 v[ROWS][UNROLL];
#pragma unroll
      for (int j = 0; j < ROWS; ++j) {
        const uint4* row = (const uint4*)(W + (long long)min(r0 + j, n - 1) * k);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int i = base + u * 32 + lane;
          v[j][u] = i < kv ? ld_stream(row + i) : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int j = 0; j < ROWS; ++j) {
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int i = base + u * 32 + lane;
          if (i < kv) acc[j] = dotv(v[j][u], xs + i * VEC, acc[j]);
        }
      }
    }
#pragma unroll
    for (int j = 0; j < ROWS; ++j) {
      const float s = warp_sum(acc[j]);
      if (lane == 0 && r0 + j < n) out(r0 + j, s);
    }
  }
}

struct Store { float* y; __device__ void operator()(int r, float s) const { __stcg(y + r, s); } };
struct Residual { float* y; __device__ void operator()(int r, float s) const { __stcg(y + r, ldcg(y + r) + s); } };
struct Keep { float* y; __device__ void operator()(int r, float s) const { y[r] = s; } };

// logits rows plus this tile's argmax (lowest index on ties), left in A for the next step's embedding
__device__ void lm_head(const Task& t, const w_t* W, float* A, const float* xs, float* red) {
  float* logits = A + t.out;
  gemv(W + t.w, (int)t.n, (int)t.k, xs, Store{logits});
  __syncthreads();
  float best = -3.0e38f;
  int idx = 0x7fffffff;
  for (int r = threadIdx.x; r < t.n; r += NT) {
    const float v = ldcg(logits + r);
    if (v > best) { best = v; idx = r; }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ob > best || (ob == best && oi < idx)) { best = ob; idx = oi; }
  }
  __shared__ float bv[32];
  __shared__ int bi[32];
  if ((threadIdx.x & 31) == 0) { bv[threadIdx.x >> 5] = best; bi[threadIdx.x >> 5] = idx; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < WARPS; ++i)
      if (bv[i] > best || (bv[i] == best && bi[i] < idx)) { best = bv[i]; idx = bi[i]; }
    __stcg(A + t.aux0, best);
    __stcg(A + t.aux0 + 1, (float)(idx + (int)t.aux1));
  }
}

// token (from the host, or the argmax the previous step's LM-head tiles left) -> x = embedding row
__device__ void embed(const Task& t, const w_t* W, float* A, int token, int epoch) {
  __shared__ int chosen;
  if (threadIdx.x == 0) {
    if (token < 0) {
      float best = -3.0e38f;
      int idx = 0x7fffffff;
      for (int s = 0; s < t.aux1; ++s) {
        const float v = ldcg(A + t.aux0 + 2 * s);
        const int i = (int)ldcg(A + t.aux0 + 2 * s + 1);
        if (v > best || (v == best && i < idx)) { best = v; idx = i; }
      }
      token = idx;
    }
    chosen = token;
    __stcg(A + t.aux2 + epoch % (int)t.aux3, (float)token);
  }
  __syncthreads();
  const w_t* row = W + t.w + (long long)chosen * t.n;
  for (int i = threadIdx.x; i < t.n; i += NT) __stcg(A + t.out + i, w2f(row[i]));
}

// attention of the GROUP query heads of KV head aux0 over positions [aux2, min(aux3, pos + 1)): partial
// softmax sums (o, m, l) per head; the task owning `pos` applies RoPE to K and stores K, V there first
__device__ void attention(const Task& t, float* A, c_t* C, int pos, float* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kvh = (int)t.aux0, chunk = (int)t.aux1, p0 = (int)t.aux2, p1 = min((int)t.aux3, pos + 1);
  const float* qkv = A + t.in;
  const float* inv = A + t.g;
  float* part = A + t.out;
  c_t* K = C + t.w;   // this task's chunk of the cache: positions [p0, aux3)
  c_t* V = C + t.w2;
  float* qs = sm;                           // GROUP * HD
  c_t* ks = (c_t*)(sm + GROUP * HD);        // SUB * HD
  c_t* vs = ks + SUB * HD;                  // SUB * HD
  float* wm = (float*)(vs + SUB * HD);      // per warp: m, l, o[HD] for each head
  for (int i = threadIdx.x; i < GROUP * HD; i += NT) {
    const int h = kvh * GROUP + i / HD, d = i % HD, p = d % PAIRS;
    float s, c;
    sincosf((float)pos * inv[p], &s, &c);
    const float x = ldcg(qkv + h * HD + d);
    const float rot = d < PAIRS ? -ldcg(qkv + h * HD + d + PAIRS) : ldcg(qkv + h * HD + d - PAIRS);
    qs[i] = x * c + rot * s;
  }
  if (pos >= p0 && pos < t.aux3) {
    const float* kn = qkv + QDIM + kvh * HD;
    const float* vn = qkv + QDIM + NKV * HD + kvh * HD;
    for (int d = threadIdx.x; d < HD; d += NT) {
      const int p = d % PAIRS;
      float s, c;
      sincosf((float)pos * inv[p], &s, &c);
      const float rot = d < PAIRS ? -ldcg(kn + d + PAIRS) : ldcg(kn + d - PAIRS);
      K[(long long)(pos - p0) * HD + d] = f2c(ldcg(kn + d) * c + rot * s);
      V[(long long)(pos - p0) * HD + d] = f2c(ldcg(vn + d));
    }
  }
  __syncthreads();
  float m[GROUP], l[GROUP], o[GROUP][2 * PPL];
#pragma unroll
  for (int g = 0; g < GROUP; ++g) {
    m[g] = -3.0e38f; l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < 2 * PPL; ++e) o[g][e] = 0.f;
  }
  const float scale = rsqrtf((float)HD);
  for (int s0 = p0; s0 < p1; s0 += SUB) {
    const int cnt = min(SUB, p1 - s0);
    const int words = cnt * HD * (int)sizeof(c_t) / 16;
    const uint4* kg = (const uint4*)(K + (long long)(s0 - p0) * HD);
    const uint4* vg = (const uint4*)(V + (long long)(s0 - p0) * HD);
    for (int i = threadIdx.x; i < words; i += NT) {
      ((uint4*)ks)[i] = __ldcg(kg + i);
      ((uint4*)vs)[i] = __ldcg(vg + i);
    }
    __syncthreads();
    for (int j = warp; j < cnt; j += WARPS) {
      float kx[2 * PPL], vx[2 * PPL];
#pragma unroll
      for (int e = 0; e < PPL; ++e) {
        const int p = lane + 32 * e;
        const bool ok = p < PAIRS;
        kx[2 * e] = ok ? c2f(ks[j * HD + p]) : 0.f;
        kx[2 * e + 1] = ok ? c2f(ks[j * HD + p + PAIRS]) : 0.f;
        vx[2 * e] = ok ? c2f(vs[j * HD + p]) : 0.f;
        vx[2 * e + 1] = ok ? c2f(vs[j * HD + p + PAIRS]) : 0.f;
      }
#pragma unroll
      for (int g = 0; g < GROUP; ++g) {
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < PPL; ++e) {
          const int p = lane + 32 * e;
          if (p < PAIRS) dot += qs[g * HD + p] * kx[2 * e] + qs[g * HD + p + PAIRS] * kx[2 * e + 1];
        }
        const float sc = warp_sum(dot) * scale;
        const float mn = fmaxf(m[g], sc);
        const float corr = __expf(m[g] - mn), pr = __expf(sc - mn);
        l[g] = l[g] * corr + pr;
#pragma unroll
        for (int e = 0; e < 2 * PPL; ++e) o[g][e] = o[g][e] * corr + pr * vx[e];
        m[g] = mn;
      }
    }
    __syncthreads();
  }
  // merge the warps' partial sums, then write (o, m, l) per head for the combine in the output projection
  float* mine = wm + warp * GROUP * (HD + 2);
#pragma unroll
  for (int g = 0; g < GROUP; ++g) {
#pragma unroll
    for (int e = 0; e < PPL; ++e) {
      const int p = lane + 32 * e;
      if (p < PAIRS) { mine[g * (HD + 2) + p] = o[g][2 * e]; mine[g * (HD + 2) + p + PAIRS] = o[g][2 * e + 1]; }
    }
    if (lane == 0) { mine[g * (HD + 2) + HD] = m[g]; mine[g * (HD + 2) + HD + 1] = l[g]; }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < GROUP * (HD + 2); i += NT) {
    const int g = i / (HD + 2), e = i % (HD + 2);
    float mx = -3.0e38f;
    for (int w = 0; w < WARPS; ++w) mx = fmaxf(mx, wm[w * GROUP * (HD + 2) + g * (HD + 2) + HD]);
    float acc = 0.f;
    for (int w = 0; w < WARPS; ++w) {
      const float* q = wm + w * GROUP * (HD + 2) + g * (HD + 2);
      const float f = __expf(q[HD] - mx);
      acc += e < HD ? f * q[e] : (e == HD ? 0.f : f * q[HD + 1]);
    }
    float* dst = part + ((long long)(kvh * GROUP + g) * CHUNKS + chunk) * (HD + 2);
    __stcg(dst + e, e == HD ? (p1 > p0 ? mx : -3.0e38f) : acc);
  }
}

#define ATTN_FLOATS (GROUP * HD + (2 * SUB * HD * (int)sizeof(c_t)) / 4 + WARPS * GROUP * (HD + 2))
#define SMEM_FLOATS (KMAX > ATTN_FLOATS ? KMAX : ATTN_FLOATS)

__device__ void run_task(const Task& t, const w_t* W, float* A, c_t* C, int token, int pos, int epoch, float* xs,
                         float* red) {
  switch ((int)t.op) {
  case 0: embed(t, W, A, token, epoch); break;
  case 1: normed_input(A + t.in, W + t.g, (int)t.k, xs, red); gemv(W + t.w, (int)t.n, (int)t.k, xs, Store{A + t.out}); break;
  case 2: normed_input(A + t.in, W + t.g, (int)t.k, xs, red); lm_head(t, W, A, xs, red); break;
  case 3: {
    normed_input(A + t.in, W + t.g, (int)t.k, xs, red);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, kv = (int)t.k / VEC;
    for (int r = warp; r < t.n; r += WARPS) {
      const uint4* gr = (const uint4*)(W + t.w + (long long)r * t.k);
      const uint4* ur = (const uint4*)(W + t.w2 + (long long)r * t.k);
      float ga = 0.f, ua = 0.f;
      for (int base = 0; base < kv; base += 32 * UNROLL) {
        uint4 vg[UNROLL], vu[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int i = base + u * 32 + lane;
          vg[u] = i < kv ? ld_stream(gr + i) : make_uint4(0, 0, 0, 0);
          vu[u] = i < kv ? ld_stream(ur + i) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int i = base + u * 32 + lane;
          if (i < kv) { ga = dotv(vg[u], xs + i * VEC, ga); ua = dotv(vu[u], xs + i * VEC, ua); }
        }
      }
      ga = warp_sum(ga);
      ua = warp_sum(ua);
      if (lane == 0) __stcg(A + t.out + r, ga / (1.f + __expf(-ga)) * ua);
    }
    break; }
  case 4: plain_input(A + t.in, (int)t.k, xs); gemv(W + t.w, (int)t.n, (int)t.k, xs, Residual{A + t.out}); break;
  case 5: combined_input(A + t.in, xs); gemv(W + t.w, (int)t.n, (int)t.k, xs, Residual{A + t.out}); break;
  case 6: attention(t, A, C, pos, xs); break;
  }
}

__device__ void prefetch_task(const Task& t, const w_t* W, const c_t* C) {
  if (PF_BYTES <= 0) return;
  if (t.op >= 1 && t.op <= 5) {
    const long long bytes = t.n * t.k * (long long)sizeof(w_t);
    if (t.op == 3) {
      prefetch_l2(W + t.w, min(bytes, (long long)PF_BYTES / 2));
      prefetch_l2(W + t.w2, min(bytes, (long long)PF_BYTES / 2));
    } else {
      prefetch_l2(W + t.w, min(bytes, (long long)PF_BYTES));
    }
  } else if (t.op == 6) {
    const long long bytes = (t.aux3 - t.aux2) * HD * (long long)sizeof(c_t);
    prefetch_l2(C + t.w, min(bytes, (long long)PF_BYTES / 2));
    prefetch_l2(C + t.w2, min(bytes, (long long)PF_BYTES / 2));
  }
}

extern "C" __global__ void __launch_bounds__(NT) megakernel(
    const w_t* __restrict__ W, float* A, c_t* C, const long long* __restrict__ tasks, const int* __restrict__ steps,
    const int* __restrict__ prog, int* counters, int* status, int token, int pos, int epoch) {
  __shared__ __align__(16) float xs[SMEM_FLOATS];
  __shared__ float red[WARPS];
  __shared__ int abort_flag;
  if (threadIdx.x == 0) abort_flag = 0;
  __syncthreads();
  const int b = blockIdx.x;
  for (int i = prog[b]; i < prog[b + 1]; ++i) {
    const int kind = steps[3 * i], a = steps[3 * i + 1], n = steps[3 * i + 2];
    if (kind == 0) {
      const Task t = *(const Task*)(tasks + 12LL * a);
      run_task(t, W, A, C, token, pos, epoch, xs, red);
      __syncthreads();
    } else if (kind == 1) {  // signal: release
      __syncthreads();
      if (threadIdx.x == 0) { __threadfence(); atomicAdd(counters + a, n); }
    } else if (kind == 2) {  // wait: acquire; prefetch the next task's weights meanwhile
      if (threadIdx.x == 0) {
        for (int j = i + 1; j < prog[b + 1]; ++j)
          if (steps[3 * j] == 0) { prefetch_task(*(const Task*)(tasks + 12LL * steps[3 * j + 1]), W, C); break; }
        const int target = n * epoch;
        if (ld_acquire(counters + a) < target) {
          const unsigned long long start = now_ns();
          while (ld_acquire(counters + a) < target) {
            __nanosleep(32);
            if (now_ns() - start > WATCHDOG_NS || *(volatile int*)status) {
              atomicExch(status, 1);
              abort_flag = 1;
              break;
            }
          }
        }
      }
      __syncthreads();
      if (abort_flag) return;
    } else {  // grid barriers are not part of the streaming lowering
      if (threadIdx.x == 0) atomicExch(status, 2);
      return;
    }
  }
}
"""
