/*
 * inputs.c — the canonical description of a run's inputs, from which the
 * journal's hash chain starts: two runs with the same description (and the
 * same cohort) must produce the same journal, and a replay or resume whose
 * inputs changed is refused before it runs.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "orch_int.h"

static int hash_into(json_t *obj, const char *key, const char *path, coh_err *err) {
  char hex[65];
  int rc = coh__sha256_file(path, hex, err);
  if (rc) return rc;
  json_object_set_new(obj, key, json_string(hex));
  return COH_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of a model folder, by name, with its SHA-256. */
static int hash_folder(json_t *files, const char *dir, coh_err *err) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0, cap = 0, i;
  int rc = COH_OK;
  if (d == NULL) return coh__err(err, COH_ENOENT, "%s: cannot open model folder", dir);
  while ((e = readdir(d)) != NULL) {
    char *p;
    struct stat st;
    if (e->d_name[0] == '.') continue;
    p = coh__path_join(dir, e->d_name);
    if (p == NULL || stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      coh__free(p);
      continue;
    }
    coh__free(p);
    if (n == cap) {
      char **nn = coh__realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *nn);
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
  for (i = 0; i < n && rc == COH_OK; i++) {
    char *p = coh__path_join(dir, names[i]);
    if (p == NULL) rc = coh__err(err, COH_ENOMEM, "out of memory");
    else rc = hash_into(files, names[i], p, err);
    coh__free(p);
  }
done:
  for (i = 0; i < n; i++) coh__free(names[i]);
  coh__free(names);
  closedir(d);
  return rc;
}

int coh_run_inputs(const coh_scenario *s, const coh_run_options *o, char **out,
                   size_t *len, coh_err *err) {
  json_t *root = json_object(), *agents = json_array(), *models = json_array();
  uint8_t h[32];
  char hex[65];
  coh__sha256 sh;
  size_t i;
  int rc = COH_OK;
  char *text;
  *out = NULL;
  coh__sha256_init(&sh);
  coh__sha256_update(&sh, s->text, s->text_len);
  coh__sha256_final(&sh, h);
  coh__hex32(h, hex);
  json_object_set_new(root, "cohort", json_string(coh_version()));
  json_object_set_new(root, "seed", json_integer((json_int_t)s->seed));
  json_object_set_new(root, "scenario_sha256", json_string(hex));
  json_object_set_new(root, "agents", agents);
  json_object_set_new(root, "models", models);
  for (i = 0; i < s->n_agents && rc == COH_OK; i++) {
    const coh_scn_agent *a = &s->agents[i];
    const char *path = a->is_prompt ? o->prompt_module : a->module;
    json_t *ja = json_object();
    json_array_append_new(agents, ja);
    json_object_set_new(ja, "id", json_string(a->id));
    if (path == NULL) {
      rc = coh__err(err, COH_EINVAL, "%s:%d: agent '%s': the stock prompt agent's module was not found",
                    s->path, a->line, a->id);
      break;
    }
    rc = hash_into(ja, "module_sha256", path, err);
    if (rc) coh__err_prefix(err, "%s:%d: agent '%s'", s->path, a->line, a->id);
  }
  for (i = 0; i < s->n_models && rc == COH_OK; i++) {
    const coh_scn_model *m = &s->models[i];
    json_t *jm = json_object(), *files = json_object();
    coh_device dev = o->device_override ? o->device : m->device;
    json_array_append_new(models, jm);
    json_object_set_new(jm, "name", json_string(m->name));
    json_object_set_new(jm, "device", json_string(coh_device_name(dev)));
    json_object_set_new(jm, "max_batch", json_integer(m->max_batch));
    json_object_set_new(jm, "threads", json_integer(m->threads));
    json_object_set_new(jm, "files", files);
    if (!o->no_model) {
      rc = hash_folder(files, m->path, err);
      if (rc) coh__err_prefix(err, "%s:%d: model '%s'", s->path, m->line, m->name);
    }
  }
  if (rc == COH_OK) {
    text = json_dumps(root, JSON_COMPACT);
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
