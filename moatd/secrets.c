#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "moatd/config.h"
#include "moatd/secrets.h"

#define VALUE_MAX (64 * 1024)

static int
value_of(const struct moatd_secret *s, char **out, size_t *len,
    struct moat_cause *cause)
{
	const char *e;
	char *v = NULL;
	size_t n = 0;

	if (s->env != NULL) {
		if ((e = getenv(s->env)) == NULL || *e == '\0') {
			moat_cause_set(cause, "secret %s: environment variable "
			    "%s is not set", s->name, s->env);
			return MOAT_ERR_INVALID;
		}
		n = strlen(e);
		if ((v = strdup(e)) == NULL)
			return MOAT_ERR_NOMEM;
	} else {
		if (moat_read_file(s->file, VALUE_MAX, &v, &n, NULL) != 0) {
			moat_cause_set(cause, "secret %s: cannot read %s",
			    s->name, s->file);
			return MOAT_ERR_INVALID;
		}
		if (n > 0 && v[n - 1] == '\n')
			v[--n] = '\0';
		if (n > 0 && v[n - 1] == '\r')
			v[--n] = '\0';
	}
	if (n == 0 || memchr(v, '\n', n) != NULL || memchr(v, '\r', n) != NULL ||
	    strlen(v) != n) {
		explicit_bzero(v, n);
		free(v);
		moat_cause_set(cause, "secret %s: the value is empty or holds a "
		    "line break or NUL", s->name);
		return MOAT_ERR_INVALID;
	}
	*out = v;
	*len = n;
	return MOAT_OK;
}

int
moatd_secrets_resolve(const struct moatd_secret *cfg, size_t n,
    struct moat_proxy_secret **out, struct moat_cause *cause)
{
	struct moat_proxy_secret *v;
	int r;

	*out = NULL;
	if (n == 0)
		return MOAT_OK;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return MOAT_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		char *val = NULL;
		size_t len = 0;

		if ((r = value_of(&cfg[i], &val, &len, cause)) != 0) {
			moatd_secrets_free(v, n);
			return r;
		}
		v[i].name = cfg[i].name;
		v[i].value = val;
		v[i].vlen = len;
		v[i].hosts = (const char *const *)cfg[i].hosts;
		v[i].nhosts = cfg[i].nhosts;
	}
	*out = v;
	return MOAT_OK;
}

void
moatd_secrets_free(struct moat_proxy_secret *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i].value != NULL) {
			explicit_bzero((char *)v[i].value, v[i].vlen);
			free((char *)v[i].value);
		}
	free(v);
}

char **
moatd_secrets_env(const struct moat_proxy_secret *v, size_t n)
{
	char **env = calloc(n + 1, sizeof(*env));

	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (asprintf(&env[i], "%s=moat:resolve:env:%s", v[i].name,
		    v[i].name) < 0) {
			moatd_secrets_env_free(env);
			return NULL;
		}
	return env;
}

void
moatd_secrets_env_free(char **env)
{
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}
