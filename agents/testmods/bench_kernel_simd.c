/* bench_kernel_simd.c — bench_kernel.c built with -msimd128 (agents/
 * CMakeLists.txt adds it for every *_simd.c): clang vectorises the kernel
 * into wasm SIMD.  test_agent checks that the validator accepts and meters
 * this real compiler output; agent_bench reports whether it loads. */
#include "bench_kernel.c"
