/*
 * Fuzz the credential placeholder rewriter (proxy/inject.c) in every
 * context and inside Basic: no crash, no read past the input, and the
 * secret's value appears in the output only where the input held a
 * placeholder for a host it is bound to (never for other.test).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct px_secrets *S;

static void
setup(void)
{
	static const char *const hosts[] = { "api.test", "*.up.test" };
	struct moat_proxy_secret v[2] = {
		{ "TOKEN", "V4LUE-of-token", 14, hosts, 2 },
		{ "K2", "\"q\\u\"", 5, hosts, 1 },
	};

	if (px_secrets_new(v, 2, &S, NULL) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hosts[] = { "api.test", "a.up.test",
		"other.test" };
	struct px_inject_err e;
	char *buf;

	if (S == NULL)
		setup();
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	for (size_t h = 0; h < 3; h++)
		for (int ctx = PX_I_RAW; ctx <= PX_I_JSON; ctx++) {
			struct px_ibuf out = { NULL, 0, 0 };
			int k = px_inject(S, hosts[h], buf, size, ctx, &out, &e);

			if (k > 0 && h == 2)
				abort(); /* nothing is bound to other.test */
			if (k == 0 && out.len != 0)
				abort();
			if (k > 0 && !px_inject_marker(buf, size))
				abort();
			px_ibuf_free(&out);
			out = (struct px_ibuf){ NULL, 0, 0 };
			k = px_inject_basic(S, hosts[h], buf, size, &out, &e);
			if (k > 0 && h == 2)
				abort();
			px_ibuf_free(&out);
		}
	free(buf);
	return 0;
}
