/*
 * inputs.c — a run's record: the genesis (the canonical description of the
 * run's inputs, from which the journal's hash chain starts) and the blobs
 * that make a journal self-contained (the scenario text and every agent
 * module, content-addressed).
 *
 * A fresh run builds the record from the scenario and the files it names
 * (coh_run_record_new); replay and resume rebuild it from the journal alone
 * (coh_run_record_load), take the modules from the journal, and check that
 * the models and options of this machine are the ones recorded.  Two runs
 * with the same genesis (and the same cohort) produce the same journal.
 *
 * The genesis (compact JSON, keys in this order):
 *   {"journal_format":2,"cohort":"<version>","seed":N,
 *    "scenario_sha256":"<hex>",
 *    "agents":[{"id":..,"module_sha256":"<hex>"},...],      scenario order
 *    "models":[{"name":..,"identity":"<hex>","files":{"<file>":"<hex>",..},
 *               "device":..,"max_batch":N,"threads":N},...]}  scenario order
 * A model's identity is SHA-256 over its folder's regular files in byte
 * order of their names: for each, the name, a NUL, and the file's 32-byte
 * SHA-256.  Paths are not in the genesis: the same scenario run from
 * another folder, or on another machine with the same models, has the same
 * genesis and the same digest.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_int.h"

/* Largest agent module accepted (wasm modules of real agents are a few MB;
 * the bound keeps /dev/zero-like inputs from being read forever). */
/* Files hashed per model folder (a bound on an input-driven loop). */
#define MODEL_FILES_MAX 4096

struct coh_run_record_priv {
  void **own; /* buffers the record owns */
  size_t n_own;
};

static int own(coh_run_record *r, void *p, coh_err *err) {
  void **n = coh__realloc(r->priv->own, (r->priv->n_own + 1) * sizeof *n);
  if (n == NULL) {
    coh__free(p);
    return coh__err(err, COH_ENOMEM, "out of memory");
  }
  r->priv->own = n;
  n[r->priv->n_own++] = p;
  return COH_OK;
}

void coh_run_record_free(coh_run_record *r) {
  size_t i;
  if (r == NULL) return;
  if (r->priv) {
    for (i = 0; i < r->priv->n_own; i++) coh__free(r->priv->own[i]);
    coh__free(r->priv->own);
    coh__free(r->priv);
  }
  coh__free(r->genesis);
  coh__free(r->modules);
  coh__free(r->blobs);
  coh__free(r);
}

static int record_alloc(size_t n_agents, coh_run_record **out, coh_err *err) {
  coh_run_record *r = coh__calloc(1, sizeof *r);
  if (r == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  r->priv = coh__calloc(1, sizeof *r->priv);
  r->modules = coh__calloc(n_agents + 1, sizeof *r->modules);
  r->blobs = coh__calloc(n_agents + 2, sizeof *r->blobs);
  if (r->priv == NULL || r->modules == NULL || r->blobs == NULL) {
    coh_run_record_free(r);
    return coh__err(err, COH_ENOMEM, "out of memory");
  }
  r->n_modules = n_agents;
  *out = r;
  return COH_OK;
}

static void sha_hex(const void *p, size_t n, uint8_t raw[32], char hex[65]) {
  coh__sha256_buf(p, n, raw);
  coh__hex32(raw, hex);
}

static int unhex32(const char *hex, uint8_t out[32]) {
  int i;
  if (hex == NULL || strlen(hex) != 64) return -1;
  for (i = 0; i < 64; i++) {
    int c = hex[i], v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else return -1;
    if (i % 2 == 0) out[i / 2] = (uint8_t)(v << 4);
    else out[i / 2] |= (uint8_t)v;
  }
  return 0;
}

/* Reads an agent module: a regular file of at most COH_MODULE_MAX_BYTES
 * (the one whole-file reader in util refuses devices, FIFOs and folders). */
static int read_module(const char *path, uint8_t **out, size_t *len, coh_err *err) {
  char *buf = NULL;
  int rc = coh__read_file_max(path, COH_MODULE_MAX_BYTES, &buf, len, err);
  *out = (uint8_t *)buf;
  if (rc) coh__err_prefix(err, "module");
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of a model folder, by name, with its SHA-256 (into
 * files), and the model's identity over them. */
static int hash_model(const char *dir, json_t *files, char identity[65], coh_err *err) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0, cap = 0, i;
  coh__sha256 id;
  uint8_t raw[32];
  int rc = COH_OK;
  if (d == NULL) return coh__err(err, COH_ENOENT, "cannot open model folder %s: %s", dir, strerror(errno));
  while ((e = readdir(d)) != NULL) {
    char *p;
    struct stat st;
    if (e->d_name[0] == '.') continue;
    p = coh__path_join(dir, e->d_name);
    if (p == NULL) { /* skipping the file would change the model's identity */
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto done;
    }
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      coh__free(p);
      continue;
    }
    coh__free(p);
    if (n == MODEL_FILES_MAX) {
      rc = coh__err(err, COH_EINVAL, "model folder %s has more than %d files", dir,
                    MODEL_FILES_MAX);
      goto done;
    }
    if (n == cap) {
      char **nn = coh__grow(names, &cap, n + 1, sizeof *nn, 16);
      if (nn == NULL) {
        rc = coh__err(err, COH_ENOMEM, "out of memory");
        goto done;
      }
      names = nn;
    }
    if ((names[n] = coh__strdup(e->d_name)) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto done;
    }
    n++;
  }
  if (n > 0) qsort(names, n, sizeof *names, cmp_str);
  coh__sha256_init(&id);
  for (i = 0; i < n && rc == COH_OK; i++) {
    char hex[65], *p = coh__path_join(dir, names[i]);
    if (p == NULL) rc = coh__err(err, COH_ENOMEM, "out of memory");
    else rc = coh__sha256_file(p, hex, err);
    coh__free(p);
    if (rc) break;
    if (unhex32(hex, raw)) {
      rc = coh__err(err, COH_EIO, "%s: bad hash", names[i]);
      break;
    }
    coh__sha256_update(&id, names[i], strlen(names[i]) + 1);
    coh__sha256_update(&id, raw, 32);
    json_object_set_new(files, names[i], json_string(hex));
  }
  if (rc == COH_OK) {
    coh__sha256_final(&id, raw);
    coh__hex32(raw, identity);
  }
done:
  for (i = 0; i < n; i++) coh__free(names[i]);
  coh__free(names);
  closedir(d);
  return rc;
}

/* The genesis JSON.  module_hex[i]: agent i's module hash.  recorded_models:
 * when non-NULL (replay --no-model), models' identity and files are copied
 * from it instead of hashing the folders. */
static int build_genesis(const coh_scenario *s, const coh_run_options *o,
                         char (*module_hex)[65], json_t *recorded_models, char **out,
                         size_t *len, coh_err *err) {
  json_t *root = json_object(), *agents = json_array(), *models = json_array();
  uint8_t raw[32];
  char hex[65], *text;
  size_t i;
  int rc = COH_OK;
  *out = NULL;
  if (root == NULL || agents == NULL || models == NULL) {
    json_decref(root);
    json_decref(agents);
    json_decref(models);
    return coh__err(err, COH_ENOMEM, "out of memory");
  }
  sha_hex(s->text, s->text_len, raw, hex);
  json_object_set_new(root, "journal_format", json_integer(COH_JOURNAL_FORMAT_VERSION));
  json_object_set_new(root, "cohort", json_string(coh_version()));
  json_object_set_new(root, "seed", json_integer((json_int_t)s->seed));
  json_object_set_new(root, "scenario_sha256", json_string(hex));
  json_object_set_new(root, "agents", agents);
  json_object_set_new(root, "models", models);
  for (i = 0; i < s->n_agents; i++) {
    json_t *ja = json_object();
    json_array_append_new(agents, ja);
    json_object_set_new(ja, "id", json_string(s->agents[i].id));
    json_object_set_new(ja, "module_sha256", json_string(module_hex[i]));
  }
  for (i = 0; i < s->n_models && rc == COH_OK; i++) {
    const coh_scn_model *m = &s->models[i];
    json_t *jm = json_object(), *files = json_object();
    coh_device dev = o->device_override ? o->device : m->device;
    char identity[65] = "";
    json_array_append_new(models, jm);
    json_object_set_new(jm, "name", json_string(m->name));
    if (recorded_models) {
      json_t *rm = json_array_get(recorded_models, i);
      json_t *rid = json_object_get(rm, "identity"), *rf = json_object_get(rm, "files");
      if (json_is_string(rid)) snprintf(identity, sizeof identity, "%s", json_string_value(rid));
      if (json_is_object(rf)) json_object_update(files, rf);
    } else {
      rc = hash_model(m->path, files, identity, err);
      if (rc) coh__err_prefix(err, "%s:%d: model '%s'", s->path, m->line, m->name);
    }
    json_object_set_new(jm, "identity", json_string(identity));
    json_object_set_new(jm, "files", files);
    json_object_set_new(jm, "device", json_string(coh_device_name(dev)));
    json_object_set_new(jm, "max_batch", json_integer(m->max_batch));
    json_object_set_new(jm, "threads", json_integer(m->threads));
  }
  if (rc == COH_OK) {
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) rc = coh__err(err, COH_ENOMEM, "out of memory");
    else {
      *len = strlen(text);
      *out = coh__malloc(*len + 1);
      if (*out) memcpy(*out, text, *len + 1);
      else rc = coh__err(err, COH_ENOMEM, "out of memory");
      free(text);
    }
  }
  json_decref(root);
  return rc;
}

/* Adds a blob unless an equal one is there; returns its index in *at. */
static void add_blob(coh_run_record *r, const void *p, size_t n) {
  size_t i;
  for (i = 0; i < r->n_blobs; i++)
    if (r->blobs[i].len == n && (n == 0 || memcmp(r->blobs[i].bytes, p, n) == 0)) return;
  r->blobs[r->n_blobs].bytes = p;
  r->blobs[r->n_blobs].len = n;
  r->n_blobs++;
}

int coh_run_record_new(const coh_scenario *s, const coh_run_options *o, coh_run_record **out,
                       coh_err *err) {
  coh_run_record *r = NULL;
  char (*hex)[65] = NULL;
  size_t i;
  int rc;
  *out = NULL;
  if ((rc = record_alloc(s->n_agents, &r, err))) return rc;
  hex = coh__calloc(s->n_agents + 1, sizeof *hex);
  if (hex == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  add_blob(r, s->text, s->text_len);
  for (i = 0; i < s->n_agents; i++) {
    const coh_scn_agent *a = &s->agents[i];
    const char *path = a->is_prompt ? o->prompt_module : a->module;
    uint8_t *bytes = NULL, raw[32];
    size_t len = 0;
    if (path == NULL) {
      rc = coh__err(err, COH_EINVAL,
                    "%s:%d: agent '%s': the stock prompt agent's module was not found", s->path,
                    a->line, a->id);
      goto fail;
    }
    if ((rc = read_module(path, &bytes, &len, err))) {
      coh__err_prefix(err, "%s:%d: agent '%s'", s->path, a->line, a->id);
      goto fail;
    }
    if ((rc = own(r, bytes, err))) goto fail;
    r->modules[i].bytes = bytes;
    r->modules[i].len = len;
    sha_hex(bytes, len, raw, hex[i]);
    add_blob(r, bytes, len);
  }
  if ((rc = build_genesis(s, o, hex, NULL, &r->genesis, &r->genesis_len, err))) goto fail;
  coh__free(hex);
  *out = r;
  return COH_OK;
fail:
  coh__free(hex);
  coh_run_record_free(r);
  return rc;
}

/* ---- replay and resume: the record from the journal --------------------- */

/* Why two model descriptions differ, naming the first differing file. */
static int model_mismatch(const coh_scn_model *m, json_t *was, json_t *now, coh_err *err) {
  const char *name;
  json_t *v;
  json_object_foreach(was, name, v) {
    json_t *n = json_object_get(now, name);
    if (n == NULL)
      return coh__err(err, COH_EMODEL,
                      "model '%s' (%s): file %s of the recorded run is missing", m->name,
                      m->path, name);
    if (!json_equal(v, n))
      return coh__err(err, COH_EMODEL,
                      "model '%s' (%s): file %s differs from the recorded run (sha256 %.16s..., "
                      "recorded %.16s...)", m->name, m->path, name, json_string_value(n),
                      json_string_value(v));
  }
  json_object_foreach(now, name, v) {
    if (json_object_get(was, name) == NULL)
      return coh__err(err, COH_EMODEL,
                      "model '%s' (%s): file %s was not in the recorded run's model folder",
                      m->name, m->path, name);
  }
  return coh__err(err, COH_EMODEL, "model '%s' (%s): its identity differs from the recorded run",
                  m->name, m->path);
}

/* The first field where two genesis records differ: its path, and the two
 * values there (borrowed; NULL where absent). */
static void first_diff(json_t *a, json_t *b, char *path, size_t cap, json_t **va, json_t **vb) {
  size_t used = strlen(path);
  *va = a;
  *vb = b;
  if (used + 8 >= cap) return; /* the path is bounded; report where it got */
  if (json_is_object(a) && json_is_object(b)) {
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) {
      if (!json_equal(v, json_object_get(b, k))) {
        snprintf(path + used, cap - used, "%s%s", used ? "." : "", k);
        first_diff(v, json_object_get(b, k), path, cap, va, vb);
        return;
      }
    }
  } else if (json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b)) {
    size_t i;
    for (i = 0; i < json_array_size(a); i++)
      if (!json_equal(json_array_get(a, i), json_array_get(b, i))) {
        snprintf(path + used, cap - used, "[%zu]", i);
        first_diff(json_array_get(a, i), json_array_get(b, i), path, cap, va, vb);
        return;
      }
  }
}

static char *short_json(json_t *v) {
  return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

int coh_run_record_load(coh_journal *j, const coh_run_options *o, coh_scenario **sout,
                        coh_run_record **out, coh_err *err) {
  coh_run_record *r = NULL;
  coh_scenario *s = NULL;
  char *inputs = NULL, *spath = NULL, *sdir = NULL, *now = NULL, (*hex)[65] = NULL;
  uint8_t *text = NULL, key[32];
  size_t ilen = 0, tlen = 0, plen, dlen, nlen = 0, i;
  json_t *g = NULL, *ng = NULL, *agents, *models;
  json_error_t je;
  int rc;

  *sout = NULL;
  *out = NULL;
  if ((rc = coh_journal_meta_get(j, "inputs", &inputs, &ilen, err))) goto done;
  g = json_loadb(inputs, ilen, 0, &je);
  agents = json_object_get(g, "agents");
  models = json_object_get(g, "models");
  if (!json_is_object(g) || !json_is_array(agents) || !json_is_array(models) ||
      unhex32(json_string_value(json_object_get(g, "scenario_sha256")), key)) {
    rc = coh__err(err, COH_EJOURNAL,
                  "the journal's genesis record (meta 'inputs') is not a cohort run's: it "
                  "lacks scenario_sha256, agents or models");
    goto done;
  }
  if (json_integer_value(json_object_get(g, "journal_format")) != COH_JOURNAL_FORMAT_VERSION) {
    rc = coh__err(err, COH_EJOURNAL, "the journal's genesis names journal format %lld; this "
                  "cohort writes format %d", (long long)json_integer_value(json_object_get(g, "journal_format")),
                  COH_JOURNAL_FORMAT_VERSION);
    goto done;
  }
  if ((rc = coh_journal_blob_get(j, key, &text, &tlen, err))) {
    coh__err_prefix(err, "the recorded scenario text");
    goto done;
  }
  /* Where the scenario was (for messages, and to find the models: the
   * folder is absolute when recorded, so the working directory does not
   * matter).  Outside the chain: a changed folder can only point at other
   * model files, which are then checked against the genesis. */
  if (coh_journal_meta_get(j, "scenario_path", &spath, &plen, err) ||
      coh_journal_meta_get(j, "scenario_dir", &sdir, &dlen, err)) {
    rc = coh__err(err, COH_EJOURNAL, "the journal lacks meta 'scenario_path' or 'scenario_dir'");
    goto done;
  }
  if ((rc = coh_scenario_parse((const char *)text, tlen, spath, sdir, &s, err))) goto done;
  if (json_array_size(agents) != s->n_agents || json_array_size(models) != s->n_models) {
    rc = coh__err(err, COH_EJOURNAL, "the genesis record lists %zu agents and %zu models; the "
                  "recorded scenario has %zu and %zu", json_array_size(agents),
                  json_array_size(models), s->n_agents, s->n_models);
    goto done;
  }
  if ((rc = record_alloc(s->n_agents, &r, err))) goto done;
  if ((rc = own(r, text, err))) {
    text = NULL;
    goto done;
  }
  add_blob(r, text, tlen);
  text = NULL;
  hex = coh__calloc(s->n_agents + 1, sizeof *hex);
  if (hex == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto done;
  }
  for (i = 0; i < s->n_agents; i++) {
    json_t *ja = json_array_get(agents, i);
    const char *mh = json_string_value(json_object_get(ja, "module_sha256"));
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (!json_is_string(json_object_get(ja, "id")) ||
        strcmp(json_string_value(json_object_get(ja, "id")), s->agents[i].id) != 0 ||
        unhex32(mh, key)) {
      rc = coh__err(err, COH_EJOURNAL, "the genesis record's agent %zu is not the scenario's "
                    "agent '%s' with a module sha256", i, s->agents[i].id);
      goto done;
    }
    if ((rc = coh_journal_blob_get(j, key, &bytes, &len, err))) {
      coh__err_prefix(err, "agent '%s': its module", s->agents[i].id);
      goto done;
    }
    if ((rc = own(r, bytes, err))) goto done;
    r->modules[i].bytes = bytes;
    r->modules[i].len = len;
    snprintf(hex[i], sizeof hex[i], "%s", mh);
    add_blob(r, bytes, len);
  }
  /* Models: hashed now and compared file by file, unless --no-model. */
  if (!o->no_model) {
    for (i = 0; i < s->n_models; i++) {
      json_t *rm = json_array_get(models, i), *files = json_object();
      char identity[65];
      if (files == NULL) {
        rc = coh__err(err, COH_ENOMEM, "out of memory");
        goto done;
      }
      rc = hash_model(s->models[i].path, files, identity, err);
      if (rc) {
        json_decref(files);
        coh__err_prefix(err, "model '%s'", s->models[i].name);
        goto done;
      }
      if (!json_is_string(json_object_get(rm, "identity")) ||
          strcmp(identity, json_string_value(json_object_get(rm, "identity"))) != 0) {
        json_t *rf = json_object_get(rm, "files");
        rc = model_mismatch(&s->models[i], json_is_object(rf) ? rf : files, files, err);
        json_decref(files);
        goto done;
      }
      json_decref(files);
    }
  }
  /* Everything else (versions, seed, devices, batch sizes, threads): the
   * genesis this cohort would write now must be the recorded one. */
  if ((rc = build_genesis(s, o, hex, models, &now, &nlen, err))) goto done;
  if (nlen != ilen || memcmp(now, inputs, ilen) != 0) {
    char path[256] = "";
    char *a, *b;
    json_t *va = NULL, *vb = NULL;
    ng = json_loadb(now, nlen, 0, &je);
    first_diff(g, ng, path, sizeof path, &va, &vb);
    a = short_json(path[0] ? va : NULL);
    b = short_json(path[0] ? vb : NULL);
    rc = coh__err(err, COH_EINVAL,
                  "the run's inputs differ from the recorded ones at '%s': recorded %.120s, "
                  "now %.120s", path[0] ? path : "(encoding)", a ? a : "(absent)",
                  b ? b : "(absent)");
    free(a);
    free(b);
    goto done;
  }
  r->genesis = inputs;
  r->genesis_len = ilen;
  inputs = NULL;
  *sout = s;
  *out = r;
  s = NULL;
  r = NULL;
  rc = COH_OK;
done:
  json_decref(g);
  json_decref(ng);
  coh__free(text);
  coh__free(inputs);
  coh__free(spath);
  coh__free(sdir);
  coh__free(now);
  coh__free(hex);
  coh_run_record_free(r);
  coh_scenario_free(s);
  return rc;
}
