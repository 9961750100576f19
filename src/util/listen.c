/* listen.c — the one parser of a listen address ("PORT" or "ADDR:PORT",
 * IPv4 or localhost), shared by the dashboard (`--ui`) and the OpenAI
 * server (`--listen`), which both serve through civetweb. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util_int.h"

int coh__parse_listen(const char *flag, const char *s, char addr[16], int *port,
                      coh_err *err) {
  const char *colon = strrchr(s, ':'), *ps = colon ? colon + 1 : s;
  char host[256];
  struct in_addr ia;
  char *end;
  long p;
  /* civetweb here is built without IPv6; a second ':' means an IPv6 form */
  if (s[0] == '[' || (colon && memchr(s, ':', (size_t)(colon - s))))
    return coh__err(err, COH_EINVAL,
                    "%s '%s': IPv6 is not supported by this civetweb build; use an IPv4 address",
                    flag, s);
  errno = 0;
  p = strtol(ps, &end, 10);
  if (*ps == '\0' || *end != '\0' || errno || p < 0 || p > 65535)
    return coh__err(err, COH_EINVAL, "%s '%s': expected ADDR:PORT or PORT (port 0..65535)", flag,
                    s);
  *port = (int)p;
  if (colon == NULL) { /* a port alone: loopback, never every interface */
    strcpy(addr, "127.0.0.1");
    return COH_OK;
  }
  if ((size_t)(colon - s) >= sizeof host || colon == s)
    return coh__err(err, COH_EINVAL, "%s '%s': expected ADDR:PORT", flag, s);
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &ia) != 1)
    return coh__err(err, COH_EINVAL, "%s '%s': '%s' is not an IPv4 address (or localhost)", flag,
                    s, host);
  inet_ntop(AF_INET, &ia, addr, 16);
  return COH_OK;
}
