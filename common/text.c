/* Text that reaches a terminal: what came from a file, the log or another
 * process may hold control sequences (erase a line, move the cursor,
 * retitle the window), which must never reach the human's terminal as
 * such. */
#include "common.h"

#include <stdio.h>
#include <string.h>

/* C0 controls, DEL, and C1 controls in UTF-8 (U+0080-U+009F, which some
 * terminals obey like ESC [). */
static size_t control_at(const unsigned char *p)
{
	if (p[0] < 0x20 || p[0] == 0x7f)
		return 1;
	if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
		return 2;
	return 0;
}

bool text_is_plain(const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u;) {
		if (control_at(u))
			return false;
		/* Not UTF-8 (a stray or overlong lead byte, a missing
		 * continuation): a terminal in another encoding may read 0x9b
		 * as CSI, and JSON cannot carry it. */
		size_t n = *u < 0x80 ? 1 : *u < 0xc2 ? 0 : *u < 0xe0 ? 2 : *u < 0xf0 ? 3 : *u < 0xf5 ? 4 : 0;
		if (n == 0)
			return false;
		for (size_t i = 1; i < n; i++)
			if ((u[i] & 0xc0) != 0x80)
				return false;
		u += n;
	}
	return true;
}

void text_escape(const char *s, char *out, size_t n)
{
	size_t o = 0;
	if (n == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		size_t c = control_at(p);
		char tmp[16];
		size_t len;
		if (c) {
			unsigned v = c == 1 ? p[0] : p[1];
			len = (size_t)snprintf(tmp, sizeof tmp, c == 1 ? "\\x%02x" : "\\u%04x", v);
			p += c - 1;
		} else {
			tmp[0] = (char)*p;
			len = 1;
		}
		if (o + len >= n)
			break;
		memcpy(out + o, tmp, len);
		o += len;
	}
	out[o] = '\0';
}
