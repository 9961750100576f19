/*
 * cohort/chat.h — chat templates: the Jinja subset that real models' chat
 * templates use (see docs/inference.md "Chat templates"), loaded from a model
 * folder, rendered from JSON variables.
 *
 * Example:
 *   coh_chat_template *t;
 *   if (coh_chat_template_load_dir("models/qwen", &t, &err)) die(err.msg);
 *   if (!t) ... the folder has no template: use coh_chat_render_plain
 *   char *text; size_t n;
 *   coh_chat_render(t, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
 *                      "\"add_generation_prompt\":true}", SIZE_MAX, &text, &n, &err);
 *   ...
 *   coh_free(text);
 *   coh_chat_template_free(t);
 *
 * A parsed template is immutable: render may be called from several threads.
 * Rendering never reads the wall clock, the environment or files:
 * strftime_now(fmt) formats the variable "date_time" (an RFC 3339 string the
 * caller passes, e.g. from the scenario), or 1970-01-01T00:00:00Z when absent.
 */
#ifndef COHORT_CHAT_H
#define COHORT_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coh_chat_template coh_chat_template;

/* Frees memory cohort returned (also declared in tokenizer.h and
 * journal.h); NULL-safe. */
void coh_free(void *ptr);

/* Parses template source src (borrowed, len bytes).  name is the file name
 * used in error messages ("tokenizer_config.json:chat_template").
 * Errors: COH_EFORMAT "NAME:LINE:COL: what" for a syntax error or an unknown
 * filter/test, COH_ERANGE (source over 1 MiB, nesting over 64), COH_ENOMEM. */
int coh_chat_template_parse(const char *src, size_t len, const char *name,
                            coh_chat_template **out, coh_err *err);

/* Loads the template of a model folder: tokenizer_config.json's
 * "chat_template" (a string, or a list of {"name","template"}: the one named
 * "default", else the first), else chat_template.jinja, else
 * chat_template.json ({"chat_template": "..."}).  The special tokens of
 * tokenizer_config.json (bos_token, eos_token, unk_token, pad_token and every
 * other top-level "*_token" field, a string or {"content": ...}) become
 * default variables.  *out = NULL and COH_OK when the folder has no template
 * (the caller then uses coh_chat_render_plain).  Errors name the file. */
int coh_chat_template_load_dir(const char *dir, coh_chat_template **out,
                               coh_err *err);

/* Same, from one file: a .jinja file (template text) or a JSON file
 * (tokenizer_config.json or chat_template.json, whose own "*_token" fields
 * count as in load_dir).  config_path, may be NULL: a tokenizer_config.json
 * whose special tokens become default variables (they win over the first
 * file's). */
int coh_chat_template_load_file(const char *path, const char *config_path,
                                coh_chat_template **out, coh_err *err);

void coh_chat_template_free(coh_chat_template *t);

/* A default variable, e.g. from the model's tokenizer_config.json ("eos_token"),
 * available to every render; a variable of the same name in vars_json wins. */
const char *coh_chat_template_special(const coh_chat_template *t,
                                      const char *name);

/* Renders t with the variables of vars_json, a JSON object (borrowed, len
 * bytes; len SIZE_MAX: NUL-terminated): "messages", "add_generation_prompt",
 * "tools", and any extra variable.  *text: NUL-terminated UTF-8, caller frees
 * with coh_free; *text_len excludes the NUL (may be NULL).
 * Errors: COH_ERAISED (the template called raise_exception: its message, as
 * given), COH_EFORMAT (bad vars JSON; a template runtime error such as calling
 * a non-callable: "NAME:LINE:COL: what"), COH_ERANGE (output over 4 MiB, or
 * over 10 million evaluation steps: a template loop is bounded),
 * COH_ENOMEM. */
int coh_chat_render(const coh_chat_template *t, const char *vars_json,
                    size_t len, char **text, size_t *text_len, coh_err *err);

/* The documented plain format for a model without a template (see
 * docs/inference.md): for each message "ROLE: CONTENT\n" with ROLE in upper
 * case ("NAME (ROLE): " when the message has a "name"), then "ASSISTANT: "
 * when add_generation_prompt.  messages_json: a JSON array of messages. */
int coh_chat_render_plain(const char *messages_json, size_t len,
                          int add_generation_prompt, char **text,
                          size_t *text_len, coh_err *err);

#ifdef __cplusplus
}
#endif
#endif
