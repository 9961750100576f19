/* ort.c — ONNX Runtime access and error translation. */
#include "ort_int.h"

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
