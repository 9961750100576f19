/*
 * cmd_models.c — `cohort models DIR`: validate a model folder and say what it
 * holds (layout, architecture, graph I/O, provider).
 */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"
#include "cohort/infer.h"

static const char usage[] =
    "usage: cohort models [--device auto|cpu|cuda] [--json] DIR\n"
    "Validates a model folder (ONNX Runtime GenAI or Hugging Face Optimum layout)\n"
    "and prints what it found; exits 1 with the reason if it is not usable.\n";

int coh__cmd_models(int argc, char **argv) {
  const char *dir = NULL;
  coh_model_options mo;
  coh_model *m = NULL;
  coh_err err;
  int json = 0, i;
  const coh_model_info *info;
  char eos_list[16 * 12 + 1];

  coh_model_options_default(&mo);
  mo.device = COH_DEVICE_CPU;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--device")) {
      if (i + 1 >= argc || coh_device_parse(argv[i + 1], &mo.device))
        return coh__usage_error("models", "--device must be auto, cpu or cuda");
      i++;
    } else if (argv[i][0] == '-') {
      return coh__usage_error("models", "unknown option '%s' (see --help)", argv[i]);
    } else if (dir == NULL) {
      dir = argv[i];
    } else {
      return coh__usage_error("models", "give exactly one model folder");
    }
  }
  if (dir == NULL) return coh__usage_error("models", "give a model folder (see --help)");
  if (coh_model_open(dir, &mo, &m, &err))
    return coh__runtime_error("models", "%s", err.msg);
  info = coh_model_get_info(m);
  {
    int k;
    size_t len = 0;
    eos_list[0] = '\0';
    for (k = 0; k < info->n_eos; k++)
      len += (size_t)snprintf(eos_list + len, sizeof eos_list - len, "%s%d", k ? ", " : "",
                              (int)info->eos_ids[k]);
  }
  if (json) {
    printf("{\"dir\": \"%s\", \"layout\": \"%s\", \"onnx\": \"%s\", \"dtype\": \"%s\", "
           "\"attention\": \"%s\", \"provider\": \"%s\", \"layers\": %d, \"heads\": %d, "
           "\"kv_heads\": %d, \"head_dim\": %d, \"hidden\": %d, \"vocab\": %lld, "
           "\"context\": %lld, \"bos\": %d, \"eos\": %d, \"eos_ids\": [%s], "
           "\"position_ids\": %s, \"tokenizer\": %s, \"chat_template\": %s}\n",
           info->dir, info->layout, info->onnx_path, info->dtype, info->attention,
           info->provider, info->n_layers, info->n_heads, info->n_kv_heads, info->head_dim,
           info->hidden, (long long)info->vocab, (long long)info->context, info->bos_id,
           info->n_eos ? info->eos_ids[0] : -1, eos_list,
           info->has_position_ids ? "true" : "false", coh_model_tokenizer(m) ? "true" : "false",
           coh_model_chat_template(m) ? "true" : "false");
  } else {
    printf("model folder   %s (%s layout)\n", info->dir, info->layout);
    printf("graph          %s\n", info->onnx_path);
    printf("architecture   %d layers, %d heads (%d KV heads), head size %d, hidden %d\n",
           info->n_layers, info->n_heads, info->n_kv_heads, info->head_dim, info->hidden);
    printf("vocabulary     %lld tokens; context %lld; bos %d; eos %d\n", (long long)info->vocab,
           (long long)info->context, info->bos_id, info->n_eos ? info->eos_ids[0] : -1);
    printf("precision      %s KV cache and logits; attention %s\n", info->dtype, info->attention);
    printf("inputs         input_ids, attention_mask%s%s, %d x past key/value\n",
           info->has_position_ids ? ", position_ids" : "",
           info->has_use_cache_branch ? ", use_cache_branch" : "", info->n_layers);
    printf("tokenizer      %s\n", coh_model_tokenizer(m) ? "tokenizer.json" : "none (ids only)");
    printf("stop ids       %s\n", info->n_eos ? eos_list : "none");
    printf("chat template  %s\n", coh_model_chat_template(m) ? "yes" : "none (chat requests use the plain format)");
    printf("provider       %s\n", info->provider);
    printf("ok\n");
  }
  coh_model_close(m);
  return COH_EXIT_OK;
}
