/*
 * journal_int.h — internals of the run journal shared between journal.c and
 * its tests: the schema version and the chain steps, so that a test can
 * recompute every chain value without a database.  The definitions are in
 * include/cohort/journal.h ("The chain"); docs/journal.md says what the
 * chain proves.
 */
#ifndef COH_JOURNAL_INT_H
#define COH_JOURNAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/journal.h"

/* Bumped whenever a table, column or the chain definition changes; open()
 * refuses any other value. */
#define COH__JOURNAL_SCHEMA COH_JOURNAL_FORMAT_VERSION
/* meta "format": tells a cohort journal from any other SQLite file. */
#define COH__JOURNAL_FORMAT "cohort-journal"
/* The first bytes hashed into the genesis (with its NUL). */
#define COH__JOURNAL_TAG "cohort-journal-5"

/* genesis = SHA256(TAG\0 || 'G' || le64 len || inputs || le64 n_blobs ||
 * the blobs' 32-byte keys in ascending byte order). */
void coh__journal_chain0(const void *inputs, size_t len,
                         const uint8_t (*blob_keys)[32], size_t n_blobs,
                         uint8_t out[32]);
/* The events of a tick, after the previous tick record: SHA256(prev || 'E' ||
 * le64 tick || le64 first_seq || le64 n_events || le64 len || blob), blob
 * being the tick's events encoded back to back (coh__journal_event_decode);
 * out may alias prev.  Every tick has this step, also one with no events. */
void coh__journal_chain_events(const uint8_t prev[32], int64_t tick,
                               int64_t first_seq, int64_t n_events,
                               const void *blob, size_t len, uint8_t out[32]);
/* One event of a tick's blob: kind\0 source\0 target\0 uvarint(payload_len)
 * payload (uvarint: unsigned LEB128, at most 10 bytes).  Decodes the event
 * at *pp (strings and payload point into the blob) and advances *pp; -1 if
 * it runs past end (a string without its NUL, a bad varint, a payload
 * longer than what is left). */
int coh__journal_event_decode(const uint8_t **pp, const uint8_t *end,
                              const char **kind, const char **source,
                              const char **target, const void **payload,
                              size_t *payload_len);
/* The n-th (1, 2, ...) checkpoint of a tick: SHA256(prev || 'C' || le64 tick
 * || le64 n || agent\0 || le64 len || state). */
void coh__journal_chain_checkpoint(const uint8_t prev[32], int64_t tick,
                                   int64_t n, const char *agent,
                                   const void *state, size_t len,
                                   uint8_t out[32]);
/* A committed tick, after its events and checkpoints: SHA256(prev || 'T' ||
 * le64 tick || le64 last_seq || le64 n_checkpoints). */
void coh__journal_chain_tick(const uint8_t prev[32], int64_t tick,
                             int64_t last_seq, int64_t n_checkpoints,
                             uint8_t out[32]);

#endif /* COH_JOURNAL_INT_H */
