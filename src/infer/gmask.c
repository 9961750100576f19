/*
 * gmask.c — the grammar-mask helper thread (see gmask.h).
 *
 * Jobs are claimed one at a time under the mutex, by the helper thread while
 * the engine thread is inside OrtRun, and by the engine thread itself once
 * OrtRun has returned: whatever the helper has not started by then, the
 * engine computes, so waiting is bounded by one mask even when the helper
 * was not scheduled at all (ONNX Runtime's spinning intra-op threads can
 * hold every core), and is never worse than computing inline.
 */
#include "gmask.h"

#include <pthread.h>
#include <string.h>

#include "util/util_int.h"

struct coh__masker {
  size_t words, grammar_words;
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* new work, quit, or the last job done */
  /* guarded by mu */
  coh__mask_job *jobs; /* the current batch */
  size_t n_jobs, next, done;
  int quit;
  double compute_s;    /* summed over both threads */
};

void coh__mask_compute(const coh__masker *m, coh__mask_job *j) {
  if (m->words > m->grammar_words)
    memset(j->mask + m->grammar_words, 0,
           (m->words - m->grammar_words) * sizeof *j->mask);
  j->rc = coh_grammar_state_mask(j->state, j->mask, &j->err);
}

/* Claims and computes jobs until none is left unclaimed.  Called with mu
 * held; returns with mu held. */
static void drain(coh__masker *m) {
  while (m->jobs != NULL && m->next < m->n_jobs) {
    coh__mask_job *j = &m->jobs[m->next++];
    double t0;
    pthread_mutex_unlock(&m->mu);
    t0 = coh__wall_seconds();
    coh__mask_compute(m, j);
    t0 = coh__wall_seconds() - t0;
    pthread_mutex_lock(&m->mu);
    m->compute_s += t0;
    if (++m->done == m->n_jobs) pthread_cond_broadcast(&m->cv);
  }
}

static void *helper(void *arg) {
  coh__masker *m = arg;
  pthread_mutex_lock(&m->mu);
  while (!m->quit) {
    if (m->jobs != NULL && m->next < m->n_jobs)
      drain(m);
    else
      pthread_cond_wait(&m->cv, &m->mu);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

int coh__masker_new(size_t words, size_t grammar_words, coh__masker **out,
                    coh_err *err) {
  coh__masker *m;
  *out = NULL;
  m = coh__calloc(1, sizeof *m);
  if (m == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  m->words = words;
  m->grammar_words = grammar_words < words ? grammar_words : words;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    coh__free(m);
    return coh__err(err, COH_ENOMEM, "grammar masks: cannot create a mutex");
  }
  if (pthread_cond_init(&m->cv, NULL) != 0) {
    pthread_mutex_destroy(&m->mu);
    coh__free(m);
    return coh__err(err, COH_ENOMEM, "grammar masks: cannot create a condition variable");
  }
  /* Without a thread the engine computes every mask itself in
   * coh__masker_wait: same masks, no overlap. */
  m->started = pthread_create(&m->thread, NULL, helper, m) == 0;
  *out = m;
  return COH_OK;
}

void coh__masker_free(coh__masker *m) {
  if (m == NULL) return;
  if (m->started) {
    pthread_mutex_lock(&m->mu);
    while (m->jobs != NULL && m->done < m->n_jobs) pthread_cond_wait(&m->cv, &m->mu);
    m->quit = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
  }
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  coh__free(m);
}

void coh__masker_start(coh__masker *m, coh__mask_job *jobs, size_t n) {
  pthread_mutex_lock(&m->mu);
  m->jobs = n > 0 ? jobs : NULL;
  m->n_jobs = n;
  m->next = m->done = 0;
  m->compute_s = 0.0;
  if (n > 0) pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

int coh__masker_wait(coh__masker *m, double *compute_s, double *wait_s,
                     coh_err *err) {
  double t0 = coh__wall_seconds();
  coh__mask_job *jobs;
  size_t n, i;
  pthread_mutex_lock(&m->mu);
  drain(m); /* what the helper has not started */
  while (m->jobs != NULL && m->done < m->n_jobs) pthread_cond_wait(&m->cv, &m->mu);
  jobs = m->jobs;
  n = m->n_jobs;
  *compute_s = m->compute_s;
  m->jobs = NULL;
  m->n_jobs = m->next = m->done = 0;
  pthread_mutex_unlock(&m->mu);
  *wait_s = coh__wall_seconds() - t0;
  for (i = 0; i < n; i++)
    if (jobs[i].rc != COH_OK) {
      if (err) *err = jobs[i].err;
      return jobs[i].rc;
    }
  return COH_OK;
}
