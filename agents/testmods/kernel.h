/* kernel.h — the benchmark's compute kernel, compiled both natively (bench/)
 * and to wasm (agents/testmods/bench_kernel.c): a 64x64 integer matrix
 * multiply repeated `reps` times, then an FNV-1a hash of the result. */
#ifndef COH_BENCH_KERNEL_H
#define COH_BENCH_KERNEL_H
#include <stdint.h>

#define KN 64
static uint32_t ka[KN * KN], kb[KN * KN], kc[KN * KN];

static uint32_t kernel_run(uint32_t reps) {
  uint32_t r, i, j, k, h = 2166136261u;
  for (i = 0; i < KN * KN; i++) {
    ka[i] = i * 2654435761u;
    kb[i] = i ^ 0x5bd1e995u;
  }
  for (r = 0; r < reps; r++) {
    for (i = 0; i < KN; i++)
      for (j = 0; j < KN; j++) {
        uint32_t s = 0;
        for (k = 0; k < KN; k++) s += ka[i * KN + k] * kb[k * KN + j];
        kc[i * KN + j] = s + r;
      }
    ka[r % (KN * KN)] ^= kc[(r * 7) % (KN * KN)];
  }
  for (i = 0; i < KN * KN; i++) h = (h ^ kc[i]) * 16777619u;
  return h;
}
#endif
