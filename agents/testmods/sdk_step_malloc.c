/* sdk_step_malloc.c — sdk_step.c with the SDK's payload arena turned off:
 * the baseline for test_agent's and agent_bench's comparisons. */
#define COHORT_ARENA_BYTES 0
#include "sdk_step.c"
