/*
 * Control commands on policies: policy.show, policy.set, policy.history,
 * policy.diff (docs/control.md).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "store/store.h"
#include "moatd/moatd.h"
#include "moatd/ctl.h"
#include "render/render.h"

/* "version": absent or 0 means the current one. */
static int
req_version(json_t *req, const char *key, int *out, struct moat_cause *cause)
{
	json_t *v = json_object_get(req, key);

	if (v == NULL) {
		*out = 0;
		return MOAT_OK;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 1000000000) {
		moat_cause_set(cause, "\"%s\" must be a version number", key);
		return MOAT_ERR_INVALID;
	}
	*out = (int)json_integer_value(v);
	return MOAT_OK;
}

int
moatd_ctl_policy_show(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	struct moat_store_policy *sp = NULL;
	const char *sb;
	char *pretty = NULL;
	int r, version;

	if ((r = ctl_sandbox(p, req, &sb, cause)) != 0 ||
	    (r = req_version(req, "version", &version, cause)) != 0)
		return r;
	if ((r = moat_store_policy_get(moatd_store(p->d), sb, version, &sp,
	    cause)) != 0)
		return r;
	if ((pretty = moat_render_json_pretty(sp->json)) == NULL) {
		moat_cause_set(cause, "%s version %d: stored policy is not "
		    "JSON", sb, sp->version);
		r = MOAT_ERR_INTERNAL;
		goto out;
	}
	json_object_set_new(reply, "sandbox", json_string(sb));
	json_object_set_new(reply, "version", json_integer(sp->version));
	json_object_set_new(reply, "hash", json_string(sp->hash));
	json_object_set_new(reply, "source", json_string(sp->source));
	json_object_set_new(reply, "who", json_string(sp->who));
	json_object_set_new(reply, "created_ms",
	    json_integer(sp->created_ms));
	json_object_set_new(reply, "state", json_string(sp->state));
	json_object_set_new(reply, "text", json_string(pretty));
	r = MOAT_OK;
out:
	free(pretty);
	moat_store_policy_free(sp);
	return r;
}

int
moatd_ctl_policy_set(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	json_t *pol = json_object_get(req, "policy");
	const char *sb, *note;
	char *text = NULL;
	int r, version = 0;

	if ((r = ctl_sandbox(p, req, &sb, cause)) != 0)
		return r;
	/* The policy as text (what the file said) or as an object. */
	if (json_is_string(pol))
		text = strdup(json_string_value(pol));
	else if (json_is_object(pol))
		text = json_dumps(pol, JSON_COMPACT);
	else {
		moat_cause_set(cause, "request needs \"policy\" (the policy "
		    "JSON, as text or an object)");
		return MOAT_ERR_INVALID;
	}
	if (text == NULL)
		return MOAT_ERR_NOMEM;
	note = json_string_value(json_object_get(req, "note"));
	r = moatd_policy_apply(p->d, sb, text, "operator", p->who, note,
	    &version, diags, cause);
	if (r == MOAT_ERR_INVALID && cause != NULL && cause->msg[0] == '\0')
		moat_cause_set(cause, "policy for %s refused; the active "
		    "policy stays", sb);
	if (r == 0) {
		json_object_set_new(reply, "sandbox", json_string(sb));
		json_object_set_new(reply, "version", json_integer(version));
		/* Warnings and notes of an accepted policy are worth showing. */
		if (diags->n > 0)
			json_object_set_new(reply, "diags",
			    ctl_diags_json(diags));
	}
	free(text);
	return r;
}

static int
history_row(const struct moat_store_policy *sp, void *arg)
{
	json_t *a = arg;

	return json_array_append_new(a, json_pack("{s:i, s:s, s:s, s:s, s:s,"
	    " s:I, s:s, s:s}", "version", sp->version, "hash",
	    sp->hash ? sp->hash : "", "source", sp->source ? sp->source : "",
	    "who", sp->who ? sp->who : "", "note", sp->note ? sp->note : "",
	    "created_ms", (json_int_t)sp->created_ms, "state", sp->state,
	    "state_note", sp->state_note)) == 0 ? 0 : MOAT_ERR_NOMEM;
}

int
moatd_ctl_policy_history(const struct ctl_peer *p, json_t *req,
    json_t *reply, struct moat_diags *diags, struct moat_cause *cause)
{
	json_t *a;
	const char *sb;
	int r;

	if ((r = ctl_sandbox(p, req, &sb, cause)) != 0)
		return r;
	if ((a = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = moat_store_policy_list(moatd_store(p->d), sb, history_row,
	    a, cause)) != 0) {
		json_decref(a);
		return r;
	}
	json_object_set_new(reply, "sandbox", json_string(sb));
	json_object_set_new(reply, "versions", a);
	return MOAT_OK;
}

int
moatd_ctl_policy_diff(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	struct moat_store_policy *a = NULL, *b = NULL;
	char *pa = NULL, *pb = NULL, *d = NULL;
	const char *sb;
	int r, va, vb;

	if ((r = ctl_sandbox(p, req, &sb, cause)) != 0 ||
	    (r = req_version(req, "from", &va, cause)) != 0 ||
	    (r = req_version(req, "to", &vb, cause)) != 0)
		return r;
	if (va == 0) {
		moat_cause_set(cause, "request needs \"from\" (a version)");
		return MOAT_ERR_INVALID;
	}
	if ((r = moat_store_policy_get(moatd_store(p->d), sb, va, &a,
	    cause)) != 0 || (r = moat_store_policy_get(moatd_store(p->d), sb,
	    vb, &b, cause)) != 0)
		goto out;
	pa = moat_render_json_pretty(a->json);
	pb = moat_render_json_pretty(b->json);
	if (pa == NULL || pb == NULL || (d = moat_render_line_diff(pa, pb)) ==
	    NULL) {
		moat_cause_set(cause, "cannot diff versions %d and %d", va,
		    b->version);
		r = MOAT_ERR_INTERNAL;
		goto out;
	}
	json_object_set_new(reply, "sandbox", json_string(sb));
	json_object_set_new(reply, "from", json_integer(a->version));
	json_object_set_new(reply, "to", json_integer(b->version));
	json_object_set_new(reply, "diff", json_string(d));
	r = MOAT_OK;
out:
	free(pa);
	free(pb);
	free(d);
	moat_store_policy_free(a);
	moat_store_policy_free(b);
	return r;
}
