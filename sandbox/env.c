/*
 * The environment of a sandboxed process: nothing of the caller's, then
 * the user's identity, PATH, the proxy variables in both cases (gRPC
 * reads the lower-case ones first; Node >= 22 needs NODE_USE_ENV_PROXY),
 * the CA variables when the sandbox has a CA (the bundle for OpenSSL,
 * requests, curl and git; the CA alone for Node, which adds it to its
 * own roots), the sandbox's fixed variables (credential placeholders),
 * and the caller's allowlisted extras (TERM, LANG, ...). An extra never
 * replaces the identity, PATH, proxy, CA or fixed variables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "sandbox/internal.h"

#define ENV_PATH "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

static const char *const proxy_vars[] = {
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
	"https_proxy", "grpc_proxy",
};

static const char *const fixed_vars[] = {
	"HOME", "USER", "LOGNAME", "SHELL", "PATH", "HTTP_PROXY",
	"HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "grpc_proxy",
	"NO_PROXY", "no_proxy", "NODE_USE_ENV_PROXY", "SSL_CERT_FILE",
	"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
	"NODE_EXTRA_CA_CERTS", "PIP_CERT",
};

static const char *const bundle_vars[] = {
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
	"GIT_SSL_CAINFO", "PIP_CERT",
};

struct env_buf {
	char **v;
	size_t n;
	size_t max;
	char *s;	/* next free byte of the string area */
	char *end;
};

static size_t
key_len(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq != NULL ? (size_t)(eq - kv) : strlen(kv);
}

static int
find(const struct env_buf *b, const char *kv)
{
	size_t k = key_len(kv);

	for (size_t i = 0; i < b->n; i++)
		if (key_len(b->v[i]) == k && strncmp(b->v[i], kv, k) == 0)
			return (int)i;
	return -1;
}

static void
put(struct env_buf *b, const char *key, const char *val)
{
	int n, at;

	if (b->n + 1 >= b->max || b->s >= b->end)
		return;
	n = snprintf(b->s, (size_t)(b->end - b->s), "%s%s%s", key,
	    val != NULL ? "=" : "", val != NULL ? val : "");
	if (n < 0 || b->s + n >= b->end)
		return;
	if ((at = find(b, b->s)) >= 0)
		b->v[at] = b->s;
	else
		b->v[b->n++] = b->s;
	b->s += n + 1;
}

static bool
is_fixed(const struct sandbox_env_in *in, const char *kv)
{
	size_t k = key_len(kv);

	for (size_t i = 0; in->fixed != NULL && in->fixed[i] != NULL; i++)
		if (key_len(in->fixed[i]) == k &&
		    strncmp(in->fixed[i], kv, k) == 0)
			return true;
	for (size_t i = 0; i < sizeof(fixed_vars) / sizeof(*fixed_vars); i++)
		if (strlen(fixed_vars[i]) == k &&
		    strncmp(fixed_vars[i], kv, k) == 0)
			return true;
	return false;
}

char **
sandbox_env_build(const struct sandbox_env_in *in)
{
	size_t nextra = 0, bytes = 4096, max;
	struct env_buf b;
	char url[128], *mem;

	for (; in->extra != NULL && in->extra[nextra] != NULL; nextra++)
		bytes += strlen(in->extra[nextra]) + 1;
	for (size_t i = 0; in->fixed != NULL && in->fixed[i] != NULL; i++) {
		bytes += strlen(in->fixed[i]) + 1;
		nextra++;
	}
	max = 40 + nextra;
	if ((mem = calloc(1, max * sizeof(char *) + bytes)) == NULL)
		return NULL;
	b.v = (char **)mem;
	b.n = 0;
	b.max = max;
	b.s = mem + max * sizeof(char *);
	b.end = b.s + bytes;
	put(&b, "HOME", in->home);
	put(&b, "USER", in->user->name);
	put(&b, "LOGNAME", in->user->name);
	put(&b, "SHELL", in->user->shell);
	put(&b, "PATH", ENV_PATH);
	put(&b, "LANG", "C.UTF-8");
	if (in->pty)
		put(&b, "TERM", "xterm-256color");
	if (in->proxy_addr != NULL && in->proxy_addr[0] != '\0') {
		snprintf(url, sizeof(url), "http://%s:%u", in->proxy_addr,
		    (unsigned)in->proxy_port);
		for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(*proxy_vars);
		    i++)
			put(&b, proxy_vars[i], url);
		put(&b, "NO_PROXY", "127.0.0.1,localhost,::1");
		put(&b, "no_proxy", "127.0.0.1,localhost,::1");
		put(&b, "NODE_USE_ENV_PROXY", "1");
	}
	if (in->ca) {
		for (size_t i = 0; i < MOAT_NELEM(bundle_vars); i++)
			put(&b, bundle_vars[i], MOAT_SANDBOX_CA_BUNDLE);
		put(&b, "NODE_EXTRA_CA_CERTS", MOAT_SANDBOX_CA_CERT);
	}
	for (size_t i = 0; in->fixed != NULL && in->fixed[i] != NULL; i++)
		put(&b, in->fixed[i], NULL);
	for (size_t i = 0; in->extra != NULL && in->extra[i] != NULL; i++)
		if (strchr(in->extra[i], '=') != NULL &&
		    !is_fixed(in, in->extra[i]))
			put(&b, in->extra[i], NULL);
	b.v[b.n] = NULL;
	return b.v;
}
