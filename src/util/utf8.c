/* utf8.c — UTF-8 validation shared by the transcript printers, and JSON
 * string literals (see util_int.h). */
#include "util_int.h"

size_t coh__utf8_seq(const unsigned char *p, size_t n) {
  uint32_t cp;
  size_t len, i;
  if (p[0] < 0x80) return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf) len = 2, cp = p[0] & 0x1f;
  else if (p[0] >= 0xe0 && p[0] <= 0xef) len = 3, cp = p[0] & 0x0f;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4) len = 4, cp = p[0] & 0x07;
  else return 0;
  if (len > n) return 0;
  for (i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

void coh__buf_add_utf8_lossy(coh__buf *b, const char *p, size_t n) {
  size_t i = 0, k;
  while (i < n) {
    k = coh__utf8_seq((const unsigned char *)p + i, n - i);
    if (k == 0) {
      coh__buf_add(b, "\xEF\xBF\xBD", 3);
      i++;
    } else {
      coh__buf_add(b, p + i, k);
      i += k;
    }
  }
}

void coh__json_str(coh__buf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, k;
  coh__buf_addc(b, '"');
  while (i < n) {
    unsigned char c = p[i];
    /* printable ASCII other than '"' and '\\' is copied in runs: the
     * orchestrator writes ~170 KB snapshots with this ten times a second */
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      size_t j = i + 1;
      while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\') j++;
      coh__buf_add(b, p + i, j - i);
      i = j;
      continue;
    }
    if (c == '"' || c == '\\') {
      coh__buf_addc(b, '\\');
      coh__buf_addc(b, (char)c);
      i++;
    } else if (c == '\n') {
      coh__buf_add(b, "\\n", 2), i++;
    } else if (c == '\t') {
      coh__buf_add(b, "\\t", 2), i++;
    } else if (c == '\r') {
      coh__buf_add(b, "\\r", 2), i++;
    } else if (c < 0x20 || c == 0x7f) {
      coh__buf_printf(b, "\\u%04x", c), i++;
    } else if ((k = coh__utf8_seq(p + i, n - i)) == 0) {
      coh__buf_add(b, "\\ufffd", 6), i++;
    } else {
      coh__buf_add(b, p + i, k), i += k;
    }
  }
  coh__buf_addc(b, '"');
}
