/*
 * Loading a policy: parse JSON (this file and load-net.c are the only
 * jansson users for policies), validate every section while collecting
 * all problems, and build the immutable snapshot the decider reads.
 *
 * Validation and building are one pass: each value is checked where it
 * is turned into its compiled form, so the two cannot drift apart.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/util.h"
#include "policies/internal.h"


static void
vdiag(struct pol_ctx *c, enum moat_diag_level lvl, const char *path,
    const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	moat_diags_add(c->d, lvl, path, "%s", buf);
}

void
pol_err(struct pol_ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(c, MOAT_DIAG_ERROR, path, fmt, ap);
	va_end(ap);
}

void
pol_warn(struct pol_ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(c, MOAT_DIAG_WARNING, path, fmt, ap);
	va_end(ap);
}

void
pol_note(struct pol_ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(c, MOAT_DIAG_NOTE, path, fmt, ap);
	va_end(ap);
}

void
pol_path(char *out, size_t n, const char *parent, const char *key)
{
	if (parent == NULL || *parent == '\0')
		snprintf(out, n, "%s", key);
	else
		snprintf(out, n, "%s.%s", parent, key);
}

void
pol_pathf(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, n, fmt, ap);
	va_end(ap);
}

void
pol_check_keys(struct pol_ctx *c, json_t *obj, const char *path,
    const char *const *known)
{
	const char *key;
	json_t *v;
	char p[POL_JPATH];

	json_object_foreach(obj, key, v) {
		size_t i;

		for (i = 0; known[i] != NULL; i++)
			if (strcmp(known[i], key) == 0)
				break;
		if (known[i] == NULL) {
			pol_path(p, sizeof(p), path, key);
			pol_err(c, p, "unknown field");
		}
	}
}

char *
pol_strdup(struct pol_ctx *c, const char *s)
{
	char *r = strdup(s);

	if (r == NULL)
		c->oom = true;
	return r;
}

void *
pol_calloc(struct pol_ctx *c, size_t n, size_t size)
{
	void *r = calloc(n ? n : 1, size);

	if (r == NULL)
		c->oom = true;
	return r;
}

/* Each getter: absent -> false quietly; wrong type -> error, false. */
json_t *
pol_get(struct pol_ctx *c, json_t *obj, const char *key, const char *parent,
    json_type type)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
		[JSON_STRING] = "a string", [JSON_INTEGER] = "an integer",
		[JSON_REAL] = "a number", [JSON_TRUE] = "true or false",
		[JSON_FALSE] = "true or false", [JSON_NULL] = "null",
	};
	json_t *v = json_object_get(obj, key);
	char p[POL_JPATH];
	bool okt;

	if (v == NULL)
		return NULL;
	okt = type == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == type;
	if (!okt) {
		pol_path(p, sizeof(p), parent, key);
		pol_err(c, p, "expected %s", names[type]);
		return NULL;
	}
	return v;
}

bool
pol_get_uint(struct pol_ctx *c, json_t *obj, const char *key,
    const char *parent, uint64_t max, uint64_t *out)
{
	json_t *v = pol_get(c, obj, key, parent, JSON_INTEGER);
	char p[POL_JPATH];
	json_int_t n;

	if (v == NULL)
		return false;
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n > max) {
		pol_path(p, sizeof(p), parent, key);
		pol_err(c, p, "%lld is out of range 0..%llu", (long long)n,
		    (unsigned long long)max);
		return false;
	}
	*out = (uint64_t)n;
	return true;
}

/* Absolute, no "..", bounded: the rules for every filesystem path. */
static void
fs_paths(struct pol_ctx *c, json_t *fs, const char *key, char ***out,
    size_t *total)
{
	json_t *arr = pol_get(c, fs, key, "filesystem_policy", JSON_ARRAY);
	size_t n = arr != NULL ? json_array_size(arr) : 0, k = 0;
	char p[POL_JPATH];
	json_t *v;
	size_t i;

	if ((*out = pol_calloc(c, n + 1, sizeof(char *))) == NULL)
		return;
	*total += n;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		snprintf(p, sizeof(p), "filesystem_policy.%s[%zu]", key, i);
		if (s == NULL) {
			pol_err(c, p, "expected a string");
			continue;
		}
		if (s[0] != '/') {
			pol_err(c, p, "'%s' is not an absolute path", s);
			continue;
		}
		if (strlen(s) > POL_MAX_PATH) {
			pol_err(c, p, "path is longer than %d characters",
			    POL_MAX_PATH);
			continue;
		}
		if (pol_has_dotdot(s)) {
			pol_err(c, p, "'%s' has a '..' component", s);
			continue;
		}
		if (strcmp(key, "read_write") == 0 && strcmp(s, "/") == 0) {
			pol_err(c, p, "read_write must not be '/' alone (that "
			    "makes the whole filesystem writable)");
			continue;
		}
		(*out)[k++] = pol_strdup(c, s);
	}
}

static void
load_fs(struct pol_ctx *c, json_t *doc)
{
	static const char *const keys[] = { "include_workdir", "read_only",
		"read_write", NULL };
	json_t *fs = pol_get(c, doc, "filesystem_policy", "", JSON_OBJECT);
	json_t *v;
	size_t total = 0;

	if (fs != NULL) {
		pol_check_keys(c, fs, "filesystem_policy", keys);
		if ((v = pol_get(c, fs, "include_workdir", "filesystem_policy",
		    JSON_TRUE)) != NULL)
			c->p->include_workdir = json_is_true(v);
	}
	fs_paths(c, fs, "read_only", &c->p->ro, &total);
	fs_paths(c, fs, "read_write", &c->p->rw, &total);
	if (total > POL_MAX_FS_PATHS)
		pol_err(c, "filesystem_policy", "%zu paths; read_only and "
		    "read_write together allow at most %d", total,
		    POL_MAX_FS_PATHS);
}

static void
load_landlock(struct pol_ctx *c, json_t *doc)
{
	static const char *const keys[] = { "compatibility", NULL };
	json_t *ll = pol_get(c, doc, "landlock", "", JSON_OBJECT), *v;
	const char *s;

	if (ll == NULL)
		return;
	pol_check_keys(c, ll, "landlock", keys);
	if ((v = pol_get(c, ll, "compatibility", "landlock", JSON_STRING)) ==
	    NULL)
		return;
	s = json_string_value(v);
	if (strcmp(s, "best_effort") == 0)
		c->p->landlock = MOAT_LANDLOCK_BEST_EFFORT;
	else if (strcmp(s, "hard_requirement") == 0)
		c->p->landlock = MOAT_LANDLOCK_HARD_REQUIREMENT;
	else
		pol_err(c, "landlock.compatibility", "'%s' is not one of "
		    "best_effort, hard_requirement", s);
}

static char *
run_as(struct pol_ctx *c, json_t *proc, const char *key)
{
	json_t *v = pol_get(c, proc, key, "process", JSON_STRING);
	const char *s;
	char p[POL_JPATH], *end = NULL;
	unsigned long long n;

	if (v == NULL)
		return NULL;
	s = json_string_value(v);
	if (strcmp(s, "sandbox") == 0)
		return pol_strdup(c, s);
	errno = 0;
	n = strtoull(s, &end, 10);
	if (s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 &&
	    n >= 1 && n <= 4294967294ULL)
		return pol_strdup(c, s);
	pol_path(p, sizeof(p), "process", key);
	pol_err(c, p, "%s must be 'sandbox' or a numeric UID/GID in range "
	    "[1, 4294967294], got '%s'", key, s);
	return NULL;
}

static void
load_process(struct pol_ctx *c, json_t *doc)
{
	static const char *const keys[] = { "run_as_user", "run_as_group",
		NULL };
	json_t *proc = pol_get(c, doc, "process", "", JSON_OBJECT);

	if (proc == NULL)
		return;
	pol_check_keys(c, proc, "process", keys);
	c->p->run_as_user = run_as(c, proc, "run_as_user");
	c->p->run_as_group = run_as(c, proc, "run_as_group");
}

static void
load_resources(struct pol_ctx *c, json_t *doc)
{
	static const char *const keys[] = { "memory_mb", "pids_max",
		"cpu_percent", NULL };
	json_t *res = pol_get(c, doc, "resources", "", JSON_OBJECT);
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t v;

	if (res == NULL)
		return;
	pol_check_keys(c, res, "resources", keys);
	if (ncpu < 1)
		ncpu = 1;
	if (pol_get_uint(c, res, "memory_mb", "resources", 1ULL << 24, &v))
		c->p->res.memory_mb = v;
	if (pol_get_uint(c, res, "pids_max", "resources", 4194304, &v))
		c->p->res.pids_max = v;
	if (pol_get_uint(c, res, "cpu_percent", "resources",
	    100 * (uint64_t)ncpu, &v))
		c->p->res.cpu_percent = (uint32_t)v;
}

static void
load_version(struct pol_ctx *c, json_t *doc)
{
	json_t *v = json_object_get(doc, "version");

	if (v == NULL)
		pol_err(c, "version", "required field is missing; add "
		    "\"version\": 1");
	else if (!json_is_integer(v))
		pol_err(c, "version", "expected an integer");
	else if (json_integer_value(v) != 1)
		pol_err(c, "version", "unsupported version %lld; expected 1",
		    (long long)json_integer_value(v));
}

void
pol_policy_destroy(struct moat_policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; p->ro != NULL && p->ro[i] != NULL; i++)
		free(p->ro[i]);
	for (size_t i = 0; p->rw != NULL && p->rw[i] != NULL; i++)
		free(p->rw[i]);
	free(p->ro);
	free(p->rw);
	for (size_t i = 0; i < p->nrules; i++)
		pol_rule_clear(&p->rules[i]);
	free(p->rules);
	free(p->run_as_user);
	free(p->run_as_group);
	free(p->json);
	free(p);
}

static int
finish(struct moat_policy *p)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	/* The canonical text is what versions, hashes and approvals see. */
	if (p->json == NULL)
		return MOAT_ERR_NOMEM;
	if (EVP_Digest(p->json, strlen(p->json), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen != sizeof(md))
		return MOAT_ERR_INTERNAL;
	moat_hex(md, sizeof(md), p->hash);
	return MOAT_OK;
}

int
pol_load_doc(json_t *doc, const struct moat_policy_opts *o,
    struct moat_policy **out, struct moat_diags *d)
{
	static const char *const keys[] = { "version", "filesystem_policy",
		"landlock", "process", "network_policies", "resources", NULL };
	static const struct moat_policy_opts defaults = { NULL, false };
	struct pol_ctx c = { d, o != NULL ? o : &defaults, NULL, -1, false };
	size_t nerr = moat_diags_count(d, MOAT_DIAG_ERROR);
	const char *root;
	int r = MOAT_ERR_NOMEM;

	if (!json_is_object(doc)) {
		pol_err(&c, "", "a policy must be a JSON object");
		return MOAT_ERR_INVALID;
	}
	if ((c.p = calloc(1, sizeof(*c.p))) == NULL)
		return MOAT_ERR_NOMEM;
	c.p->refs = 1;
	if (!c.o->no_fs) {
		root = c.o->binary_root != NULL ? c.o->binary_root : "/";
		c.rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (c.rootfd == -1)
			pol_warn(&c, "", "binary_root %s: %s; binary paths "
			    "are not checked", root, strerror(errno));
	}
	load_version(&c, doc);
	if (json_object_get(doc, "network_middlewares") != NULL)
		pol_err(&c, "network_middlewares", "not supported by moat "
		    "(an OpenShell-only extension); remove it");
	else
		pol_check_keys(&c, doc, "", keys);
	load_fs(&c, doc);
	load_landlock(&c, doc);
	load_process(&c, doc);
	load_resources(&c, doc);
	pol_load_network(&c, json_object_get(doc, "network_policies"));
	if (c.rootfd != -1)
		close(c.rootfd);
	if (c.oom)
		goto out;
	if (moat_diags_count(d, MOAT_DIAG_ERROR) > nerr) {
		r = MOAT_ERR_INVALID;
		goto out;
	}
	c.p->json = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
	if ((r = finish(c.p)) != MOAT_OK)
		goto out;
	*out = c.p;
	c.p = NULL;
out:
	pol_policy_destroy(c.p);
	return r;
}
