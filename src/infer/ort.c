/* ort.c — ONNX Runtime access and error translation. */
#include <stdlib.h>

#include "ort_int.h"

/* ONNX Runtime's telemetry off, before anything can create an OrtEnv.
 *
 * The prebuilt libonnxruntime (1.29, Linux) starts a telemetry system (the
 * 1DS "EventsSDK" LogManager) on the process's first CreateEnv, with a
 * worker thread of its own (a TaskDispatcher waiting on a timer).  That
 * thread is not the env's: ReleaseSession and ReleaseEnv leave it running,
 * and only a static destructor the library registered at exit stops it, so
 * it outlives main and races the exit handlers — ASan saw a heap
 * use-after-free after main returned in test_engine, TSan a race at exit in
 * orch_run.  OrtApi::DisableTelemetryEvents comes too late (the thread is
 * already running once there is an env to pass it); the library reads
 * ORT_DISABLE_TELEMETRY in CreateEnv, and with it set starts no thread.
 * This runs when the program is loaded, while it has one thread, so the
 * setenv races no getenv.  cohort never wants the telemetry: nothing is
 * uploaded ("Collector URL is not set"), but it keeps a store under
 * ~/.cache/Microsoft.  tests/test.h checks, at the end of every C test
 * program, that no thread is left. */
__attribute__((constructor)) static void coh__ort_telemetry_off(void) {
  setenv("ORT_DISABLE_TELEMETRY", "1", 1);
}

const OrtApi *coh__ort(void) {
  /* OrtGetApiBase() returns a static table; GetApi returns NULL when the
   * library does not implement the requested version. */
  return OrtGetApiBase()->GetApi(ORT_API_VERSION);
}

int coh__ort_check(OrtStatus *status, coh_err *err, const char *what) {
  const OrtApi *api;
  if (status == NULL) return COH_OK;
  api = coh__ort();
  coh__err(err, COH_EORT, "%s: %s", what, api->GetErrorMessage(status));
  api->ReleaseStatus(status);
  return COH_EORT;
}

size_t coh__ort_elem_size(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return 8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return 1;
    default: return 0;
  }
}
