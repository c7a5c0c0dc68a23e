/*
 * The snapshot's public face: loading entry points, references, the
 * canonical text and hash, and the accessors for the static sections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"
#include "policies/internal.h"

#define POLICY_MAX_BYTES (4u << 20)

static int
load_json(json_t *doc, const struct moat_policy_opts *o,
    struct moat_policy **out, struct moat_diags *d)
{
	struct moat_diags local;
	int r;

	/* Errors must be counted even when the caller keeps none. */
	if (d != NULL)
		return pol_load_doc(doc, o, out, d);
	moat_diags_init(&local);
	r = pol_load_doc(doc, o, out, &local);
	moat_diags_free(&local);
	return r;
}

int
moat_policy_load_string(const char *json, size_t len, const char *source,
    const struct moat_policy_opts *o, struct moat_policy **out,
    struct moat_diags *d)
{
	json_error_t jerr;
	json_t *doc = NULL;
	int r;

	(void)source;
	if (len > POLICY_MAX_BYTES) {
		moat_diags_add(d, MOAT_DIAG_ERROR, "", "larger than %u bytes",
		    POLICY_MAX_BYTES);
		return MOAT_ERR_INVALID;
	}
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		moat_diags_add(d, MOAT_DIAG_ERROR, "", "not valid JSON: %s "
		    "(line %d, column %d)", jerr.text, jerr.line, jerr.column);
		return MOAT_ERR_INVALID;
	}
	r = load_json(doc, o, out, d);
	json_decref(doc);
	return r;
}

int
moat_policy_load_file(const char *path, const struct moat_policy_opts *o,
    struct moat_policy **out, struct moat_diags *d)
{
	struct moat_cause cause = { { 0 } };
	char *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = moat_read_file(path, POLICY_MAX_BYTES, &buf, &len,
	    &cause)) != 0) {
		moat_diags_add(d, MOAT_DIAG_ERROR, "", "%s",
		    moat_cause_str(&cause, r));
		return r;
	}
	r = moat_policy_load_string(buf, len, path, o, out, d);
	free(buf);
	return r;
}

struct moat_policy *
moat_policy_ref(struct moat_policy *p)
{
	if (p != NULL)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

void
moat_policy_free(struct moat_policy *p)
{
	if (p == NULL)
		return;
	if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		pol_policy_destroy(p);
}

const char *
moat_policy_json(const struct moat_policy *p)
{
	return p->json;
}

const char *
moat_policy_hash(const struct moat_policy *p)
{
	return p->hash;
}

char *
moat_policy_json_pretty(const struct moat_policy *p)
{
	json_t *doc = json_loads(p->json, 0, NULL);
	char *s;

	if (doc == NULL)
		return NULL;
	s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(doc);
	return s;
}

bool
moat_policy_include_workdir(const struct moat_policy *p)
{
	return p->include_workdir;
}

const char *const *
moat_policy_read_only(const struct moat_policy *p)
{
	return (const char *const *)p->ro;
}

const char *const *
moat_policy_read_write(const struct moat_policy *p)
{
	return (const char *const *)p->rw;
}

enum moat_landlock_compat
moat_policy_landlock(const struct moat_policy *p)
{
	return p->landlock;
}

const char *
moat_policy_run_as_user(const struct moat_policy *p)
{
	return p->run_as_user;
}

const char *
moat_policy_run_as_group(const struct moat_policy *p)
{
	return p->run_as_group;
}

void
moat_policy_resources(const struct moat_policy *p, struct moat_resources *out)
{
	*out = p->res;
}

size_t
moat_policy_count(const struct moat_policy *p)
{
	return p->nrules;
}

size_t
moat_policy_endpoint_count(const struct moat_policy *p)
{
	return p->nendpoints;
}
