/*
 * scenario_int.h — internals of the scenario loader: YAML scalar resolution
 * and the YAML → JSON conversion used for agents' config and message bodies.
 * Split from scenario.c so that the schema code reads as a schema.
 */
#ifndef COH_SCENARIO_INT_H
#define COH_SCENARIO_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "cohort/common.h"
#include "util/util_int.h"

/* What a scalar means.  Quoted and block scalars are always strings; plain
 * scalars follow the YAML 1.2 core schema (null, true/false, ints in decimal,
 * 0x hex and 0o octal, floats, .inf/.nan).  YAML 1.1's yes/no/on/off are
 * deliberately strings: "country: no" must not become false. */
typedef enum coh__ykind {
  COH__Y_STR = 0,
  COH__Y_NULL,
  COH__Y_BOOL,
  COH__Y_INT,    /* fits int64: .i */
  COH__Y_BIGINT, /* an integer that does not fit int64 (sign in .neg) */
  COH__Y_FLOAT,  /* finite: .d */
  COH__Y_NONFINITE /* .inf / .nan: no JSON form */
} coh__ykind;

typedef struct coh__yscalar {
  coh__ykind kind;
  int b;        /* BOOL */
  int neg;      /* INT/BIGINT: written with a leading '-' */
  int64_t i;    /* INT */
  double d;     /* FLOAT */
} coh__yscalar;

/* Resolves a scalar node (n->type must be YAML_SCALAR_NODE). */
void coh__yaml_resolve(const yaml_node_t *n, coh__yscalar *out);

/* Writes "PATH:LINE:COLUMN: <message>" (1-based line and column) into err
 * and returns code. */
int coh__yaml_err(coh_err *err, int code, const char *path, yaml_mark_t mark,
                  const char *fmt, ...) COH__PRINTF(5, 6);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int coh__utf8_valid(const char *s, size_t n);

/* State of YAML → JSON conversions over one document.  budget bounds the
 * work (nodes + scalar bytes) that aliases can multiply ("billion laughs");
 * prec collects the digits the reals need so the dump is round-trip exact
 * without 17-digit noise. */
typedef struct coh__yjson {
  yaml_document_t *doc;
  const char *path;
  coh_err *err;
  size_t budget;
  int prec;
} coh__yjson;

/* Base budget; the loader adds 16 units per input byte, so documents
 * without aliases (about 2 units per byte at most) never come close. */
#define COH__YJSON_BUDGET ((size_t)1 << 20)
#define COH__YJSON_MAX_DEPTH 64

/* Converts node n to a new jansson value (*out: caller releases with
 * json_decref).  Errors (COH_EFORMAT with FILE:LINE:COLUMN): non-scalar
 * mapping keys, duplicate keys, .inf/.nan, integers beyond 64 bits, invalid
 * UTF-8, nesting deeper than COH__YJSON_MAX_DEPTH (aliases can make a
 * document recursive), aliases expanding past the budget; COH_ENOMEM. */
int coh__yaml_to_json(coh__yjson *c, yaml_node_t *n, int depth, json_t **out);

/* Dumps v as compact JSON (JSON_ENCODE_ANY) into a NUL-terminated buffer.
 * *out: caller frees with coh__free.  COH_ENOMEM on failure. */
int coh__json_compact(const json_t *v, int prec, char **out, size_t *out_len);

#endif /* COH_SCENARIO_INT_H */
