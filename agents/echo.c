/* echo.c — emits every message it receives and sends it back to the sender
 * (prefixed "echo: "). */
#include <stdio.h>

#include "cohort_sdk.h"

static int echo_init(const char *config, size_t len) {
  (void)config;
  (void)len;
  return 0;
}

static int echo_event(const coh_event *ev) {
  char *reply;
  if (ev->kind != COH_ABI_EV_MESSAGE) return 0;
  coh_emit(ev->body, ev->body_len);
  reply = malloc(ev->body_len + 6);
  if (reply == NULL) return 1;
  memcpy(reply, "echo: ", 6);
  memcpy(reply + 6, ev->body, ev->body_len);
  if (ev->header[0]) coh_send(ev->header, reply, ev->body_len + 6);
  free(reply);
  printf("echoed %zu bytes\n", ev->body_len);
  fflush(stdout);
  return 0;
}

COHORT_AGENT(echo_init, echo_event)
