/*
 * ort_int.h — the boundary with ONNX Runtime.  Every OrtStatus is translated
 * here into a COH_E* code plus message, once; the rest of src/infer speaks
 * cohort errors only.
 */
#ifndef COH_ORT_INT_H
#define COH_ORT_INT_H

#include <onnxruntime_c_api.h>

#include "cohort/infer.h"
#include "util/util_int.h"

/* The ORT function table (API version 29).  NULL if the loaded library is
 * older than the headers, which coh__ort_api() reports as an error. */
const OrtApi *coh__ort(void);

/* Converts status (takes ownership; may be NULL = success) into a cohort
 * error with "what: ORT message".  Returns COH_OK or COH_EORT. */
int coh__ort_check(OrtStatus *status, coh_err *err, const char *what);

/* Shorthand for the common pattern: `if (ORT(api->X(...), "X")) goto fail;`
 * in a function that has `coh_err *err` in scope. */
#define COH_ORT_CALL(call, what) coh__ort_check((call), err, (what))

/* Size in bytes of one element of an ORT tensor type (0 if unsupported). */
size_t coh__ort_elem_size(ONNXTensorElementDataType t);


#endif /* COH_ORT_INT_H */
