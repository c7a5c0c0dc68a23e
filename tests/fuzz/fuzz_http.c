/*
 * Fuzz the request-head parser and the chunked framer: no crash, no
 * read past the input, and the parser's invariants hold (spans inside
 * the head, one Host, at most one empty line before the request).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_http_req r;
	struct moat_http_chunked c;
	struct moat_cause cause;
	int status = 0, rc;
	char *buf;
	size_t used = 0, nhost = 0;

	/* An exact-size heap copy so ASan sees any overread. */
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	rc = moat_http_parse(buf, size, &r, &status, &cause);
	if (rc == MOAT_OK) {
		if (r.head_len > size || r.head_len > MOAT_HTTP_HEAD_MAX)
			abort();
		if (r.port == 0 || r.host[0] == '\0')
			abort();
		if (r.chunked && r.content_length >= 0)
			abort();
		if (r.path.off + r.path.len > r.head_len)
			abort();
		for (size_t i = 0; i < r.nheaders; i++) {
			if (r.headers[i].value.off + r.headers[i].value.len >
			    r.head_len)
				abort();
			if (moat_http_span_eq(buf, r.headers[i].name, "host"))
				nhost++;
		}
		/* RFC 9112 3.2: one Host at most, and one in HTTP/1.1. */
		if (nhost > 1 || (r.minor == 1 && nhost == 0))
			abort();
		/* At most one empty line before the request line. */
		if (size >= 4 && memcmp(buf, "\r\n\r\n", 4) == 0)
			abort();
		if (r.chunked) {
			moat_http_chunked_init(&c);
			if (moat_http_chunked_feed(&c, buf + r.head_len,
			    size - r.head_len, &used) == MOAT_OK &&
			    used > size - r.head_len)
				abort();
		}
	} else if (rc == MOAT_ERR_INVALID) {
		if (status != 400 && status != 431)
			abort();
	} else if (rc != MOAT_ERR_AGAIN) {
		abort();
	}
	free(buf);
	return 0;
}
