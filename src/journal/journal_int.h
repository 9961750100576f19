/*
 * journal_int.h — internals of the run journal shared between journal.c and
 * its tests: the schema version and the chain step, so that a test (or a
 * future `cohort replay`) can recompute a row hash without a database.
 */
#ifndef COH_JOURNAL_INT_H
#define COH_JOURNAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/journal.h"

/* Bumped whenever a table, column or the chain definition changes; open()
 * refuses any other value. */
#define COH__JOURNAL_SCHEMA 1
/* meta "format": tells a cohort journal from any other SQLite file. */
#define COH__JOURNAL_FORMAT "cohort-journal"

/* chain[0] = SHA256("cohort-journal-1\0" || inputs). */
void coh__journal_chain0(const void *inputs, size_t len, uint8_t out[32]);
/* chain[seq] from chain[seq-1] (prev) and the row's deterministic columns;
 * out may alias prev. */
void coh__journal_chain_step(const uint8_t prev[32], int64_t seq, int64_t tick,
                             const char *kind, const char *source,
                             const char *target, const void *payload,
                             size_t payload_len, uint8_t out[32]);

#endif /* COH_JOURNAL_INT_H */
