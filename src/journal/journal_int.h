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
#define COH__JOURNAL_TAG "cohort-journal-3"

/* genesis = SHA256(TAG\0 || 'G' || le64 len || inputs || le64 n_blobs ||
 * the blobs' 32-byte keys in ascending byte order). */
void coh__journal_chain0(const void *inputs, size_t len,
                         const uint8_t (*blob_keys)[32], size_t n_blobs,
                         uint8_t out[32]);
/* An event: SHA256(prev || 'E' || le64 seq || le64 tick || kind\0 ||
 * source\0 || target\0 || le64 payload_len || payload); out may alias prev. */
void coh__journal_chain_step(const uint8_t prev[32], int64_t seq, int64_t tick,
                             const char *kind, const char *source,
                             const char *target, const void *payload,
                             size_t payload_len, uint8_t out[32]);
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
