// Join latency under HBM load (bench/megakernel_joins.py builds and runs this): 128 persistent blocks (clusters
// of 8) stream 64 or 16 KB each per round, as a megakernel phase does, then join; the time per round beyond the
// stream-only mode is the join's cost.
// Modes: 0 none; 1 counter join of the cluster's 8 blocks (red.release / ld.acquire polls, as the megakernel);
// 2 cluster barrier (barrier.cluster arrive.release / wait.acquire); 3 counter join of all 128 blocks;
// 4 = 1 + each block then reads a float its neighbour stored before the join (an L2 round trip);
// 5 = 2 + the same read from the neighbour's shared memory (DSMEM).
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <type_traits>
#include <cuda_runtime.h>
#include <cooperative_groups.h>
namespace cg = cooperative_groups;

__device__ __forceinline__ int ld_acquire(const int* p) { int v; asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory"); return v; }
__device__ __forceinline__ void red_release(int* p, int n) { asm volatile("red.release.gpu.global.add.s32 [%0], %1;" :: "l"(p), "r"(n) : "memory"); }

template <int MODE, int KB>
__global__ void __cluster_dims__(8, 1, 1) __launch_bounds__(512) k(const uint4* __restrict__ w, int rounds,
                                                                   int* counters, float* data, float* sink) {
  cg::cluster_group cl = cg::this_cluster();
  __shared__ float s_val[2];   // double-buffered: one cluster barrier per round
  const unsigned cid = blockIdx.x / 8, rank = cl.block_rank();
  float acc = 0.f;
  for (int r = 0; r < rounds; ++r) {
    // the block's whole batch in flight at once (each thread's loads issued before any is used), as the
    // megakernel's pre-wait batches: 132 blocks x 64 KB stream at 4.35 TB/s this way
    constexpr int VEC = KB * 1024 / 16, PER = VEC / 512;
    const uint4* p = w + ((size_t)r * gridDim.x + blockIdx.x) * VEC;
    uint4 v[PER > 0 ? PER : 1];
#pragma unroll
    for (int j = 0; j < PER; ++j) v[j] = __ldcs(p + threadIdx.x + j * 512);
#pragma unroll
    for (int j = 0; j < PER; ++j) acc += __uint_as_float(v[j].x) + __uint_as_float(v[j].w);
    if (MODE == 4 && threadIdx.x == 0) __stcg(data + blockIdx.x, acc + r);
    if (MODE == 5 && threadIdx.x == 0) s_val[r & 1] = acc + r;
    if (MODE == 1 || MODE == 4 || MODE == 3) {
      __syncthreads();
      int* c = MODE == 3 ? counters : counters + cid;
      const int target = (MODE == 3 ? gridDim.x : 8) * (r + 1);
      if (threadIdx.x == 0) { red_release(c, 1); while (ld_acquire(c) < target) {} }
      __syncthreads();
    }
    if (MODE == 2 || MODE == 5) cl.sync();
    if (MODE == 4) acc += __ldcg(data + (cid * 8 + (rank + 1) % 8));
    if (MODE == 5) acc += *cl.map_shared_rank(&s_val[r & 1], (rank + 1) % 8);
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

template <int MODE, int KB>
float run(const uint4* w, int rounds, int* counters, float* data, float* sink) {
  cudaMemset(counters, 0, 4096);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  cudaEventRecord(a);
  k<MODE, KB><<<128, 512>>>(w, rounds, counters, data, sink);
  cudaEventRecord(b); cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms, a, b);
  if (cudaGetLastError() != cudaSuccess) { fprintf(stderr, "launch failed mode %d\n", MODE); exit(1); }
  return ms * 1e3f / rounds;
}

static void report(const char* label, int kb, const std::vector<std::vector<float>>& t, bool first, int m0) {
  const char* names[] = {"stream_only", "counter_join_8", "cluster_barrier_8", "counter_join_128",
                         "counter_join_8_then_l2_read", "cluster_barrier_8_then_dsmem_read"};
  printf("%s\"%s\": {\"kb_per_block\": %d", first ? "" : ", ", label, kb);
  for (int m = m0; m < 6; ++m) {
    std::vector<float> v = t[m];
    std::sort(v.begin(), v.end());
    printf(", \"%s\": {\"us_per_round_median\": %.4f, \"us_per_round_min\": %.4f}", names[m], v[v.size() / 2], v[0]);
  }
  printf("}");
}

int main() {
  const int rounds = 300;
  printf("{");
  bool first = true;
  auto measure = [&](auto kb_tag, const char* label) {
    constexpr int KB = decltype(kb_tag)::value;
    uint4* w; int* counters; float *data, *sink;
    const size_t bytes = (size_t)rounds * 128 * KB * 1024;
    cudaMalloc(&w, bytes); cudaMemset(w, 0, bytes);
    cudaMalloc(&counters, 4096); cudaMalloc(&data, 4096); cudaMalloc(&sink, 128 * 512 * 4);
    std::vector<std::vector<float>> t(6);
    for (int rep = 0; rep < 7; ++rep) {   // the modes interleaved, 7 times
      t[0].push_back(run<0, KB>(w, rounds, counters, data, sink)); t[1].push_back(run<1, KB>(w, rounds, counters, data, sink));
      t[2].push_back(run<2, KB>(w, rounds, counters, data, sink)); t[3].push_back(run<3, KB>(w, rounds, counters, data, sink));
      t[4].push_back(run<4, KB>(w, rounds, counters, data, sink)); t[5].push_back(run<5, KB>(w, rounds, counters, data, sink));
    }
    report(label, KB, t, first, 0);
    first = false;
    cudaFree(w); cudaFree(counters); cudaFree(data); cudaFree(sink);
  };
  measure(std::integral_constant<int, 64>(), "load_64kb");
  measure(std::integral_constant<int, 16>(), "load_16kb");
  {   // no load: the joins alone
    uint4* w; int* counters; float *data, *sink;
    cudaMalloc(&w, 4096); cudaMalloc(&counters, 4096); cudaMalloc(&data, 4096); cudaMalloc(&sink, 128 * 512 * 4);
    std::vector<std::vector<float>> t(6);
    for (int rep = 0; rep < 7; ++rep) {
      t[1].push_back(run<1, 0>(w, 3000, counters, data, sink)); t[2].push_back(run<2, 0>(w, 3000, counters, data, sink));
      t[3].push_back(run<3, 0>(w, 3000, counters, data, sink)); t[4].push_back(run<4, 0>(w, 3000, counters, data, sink));
      t[5].push_back(run<5, 0>(w, 3000, counters, data, sink));
    }
    report("no_load", 0, t, false, 1);
  }
  printf("}\n");
  return 0;
}
