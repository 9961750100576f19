/*
 * gmask.c — the grammar-mask helper thread (see gmask.h).
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
  pthread_cond_t cv;
  coh__mask_job *jobs; /* the current batch; guarded by mu while handed over */
  size_t n_jobs;
  int pending;         /* 1 from start until the helper has finished */
  int quit;
  double compute_s;
};

void coh__mask_compute(const coh__masker *m, coh__mask_job *j) {
  if (m->words > m->grammar_words)
    memset(j->mask + m->grammar_words, 0,
           (m->words - m->grammar_words) * sizeof *j->mask);
  j->rc = coh_grammar_state_mask(j->state, j->mask, &j->err);
}

static void run_jobs(coh__masker *m, coh__mask_job *jobs, size_t n) {
  double t0 = coh__wall_seconds();
  size_t i;
  for (i = 0; i < n; i++) coh__mask_compute(m, &jobs[i]);
  m->compute_s = coh__wall_seconds() - t0;
}

static void *helper(void *arg) {
  coh__masker *m = arg;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    coh__mask_job *jobs;
    size_t n;
    while (!m->pending && !m->quit) pthread_cond_wait(&m->cv, &m->mu);
    if (m->quit) break;
    jobs = m->jobs;
    n = m->n_jobs;
    pthread_mutex_unlock(&m->mu);
    run_jobs(m, jobs, n);
    pthread_mutex_lock(&m->mu);
    m->pending = 0;
    pthread_cond_broadcast(&m->cv);
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
  /* Without a thread the masks are computed inline: same result, slower. */
  m->started = pthread_create(&m->thread, NULL, helper, m) == 0;
  *out = m;
  return COH_OK;
}

void coh__masker_free(coh__masker *m) {
  if (m == NULL) return;
  if (m->started) {
    pthread_mutex_lock(&m->mu);
    while (m->pending) pthread_cond_wait(&m->cv, &m->mu);
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
  m->jobs = jobs;
  m->n_jobs = n;
  m->compute_s = 0.0;
  m->pending = n > 0 && m->started;
  if (m->pending) pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

int coh__masker_wait(coh__masker *m, double *compute_s, double *wait_s,
                     coh_err *err) {
  double t0 = coh__wall_seconds();
  coh__mask_job *jobs;
  size_t n, i;
  pthread_mutex_lock(&m->mu);
  if (!m->started && m->n_jobs > 0) {
    /* inline fallback */
    pthread_mutex_unlock(&m->mu);
    run_jobs(m, m->jobs, m->n_jobs);
    pthread_mutex_lock(&m->mu);
  }
  while (m->pending) pthread_cond_wait(&m->cv, &m->mu);
  jobs = m->jobs;
  n = m->n_jobs;
  *compute_s = m->compute_s;
  m->jobs = NULL;
  m->n_jobs = 0;
  pthread_mutex_unlock(&m->mu);
  *wait_s = m->started ? coh__wall_seconds() - t0 : 0.0;
  for (i = 0; i < n; i++)
    if (jobs[i].rc != COH_OK) {
      if (err) *err = jobs[i].err;
      return jobs[i].rc;
    }
  return COH_OK;
}
