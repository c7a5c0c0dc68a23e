/*
 * Control commands on proposals: proposals.list, proposals.approve,
 * proposals.reject (docs/control.md). Approvals run one after another on
 * moatd's single thread, each merging onto the policy current at that
 * moment, so two approvals never lose a version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/store.h"
#include "moatd/moatd.h"
#include "moatd/ctl.h"
#include "moatd/proposals.h"
#include "render/render.h"

static int
list_row(const struct moat_store_proposal *sp, void *arg)
{
	json_t *a = arg, *o;

	if ((o = moat_render_proposal_json(sp)) == NULL)
		return MOAT_ERR_NOMEM;
	return json_array_append_new(a, o) == 0 ? 0 : MOAT_ERR_NOMEM;
}

int
moatd_ctl_proposals_list(const struct ctl_peer *p, json_t *req,
    json_t *reply, struct moat_diags *diags, struct moat_cause *cause)
{
	const char *sb = json_string_value(json_object_get(req, "sandbox"));
	const char *st = json_string_value(json_object_get(req, "status"));
	json_t *a;
	int r;

	if (st == NULL)
		st = MOAT_STORE_PENDING;
	else if (strcmp(st, "all") == 0)
		st = NULL;
	else if (strcmp(st, MOAT_STORE_PENDING) != 0 &&
	    strcmp(st, MOAT_STORE_APPROVED) != 0 &&
	    strcmp(st, MOAT_STORE_REJECTED) != 0) {
		moat_cause_set(cause, "status must be pending, approved, "
		    "rejected or all");
		return MOAT_ERR_INVALID;
	}
	if ((a = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = moat_store_proposal_list(moatd_store(p->d), sb, st, list_row,
	    a, cause)) != 0) {
		json_decref(a);
		return r;
	}
	json_object_set_new(reply, "proposals", a);
	return MOAT_OK;
}

static int
req_ids(json_t *req, int64_t **ids, size_t *n, struct moat_cause *cause)
{
	json_t *v = json_object_get(req, "ids"), *e;
	size_t i;

	if (v == NULL && (e = json_object_get(req, "id")) != NULL) {
		v = json_array();
		json_array_append(v, e);
	} else
		json_incref(v);
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > 1000) {
		moat_cause_set(cause, "request needs \"ids\" (1 to 1000 "
		    "proposal ids) or \"id\"");
		json_decref(v);
		return MOAT_ERR_INVALID;
	}
	*n = json_array_size(v);
	if ((*ids = calloc(*n, sizeof(**ids))) == NULL) {
		json_decref(v);
		return MOAT_ERR_NOMEM;
	}
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) <= 0) {
			moat_cause_set(cause, "ids[%zu] is not a proposal id",
			    i);
			free(*ids);
			json_decref(v);
			return MOAT_ERR_INVALID;
		}
		(*ids)[i] = json_integer_value(e);
	}
	json_decref(v);
	return MOAT_OK;
}

int
moatd_ctl_proposals_approve(const struct ctl_peer *p, json_t *req,
    json_t *reply, struct moat_diags *diags, struct moat_cause *cause)
{
	const char *hash = json_string_value(json_object_get(req, "hash"));
	json_t *res;
	int64_t *ids = NULL;
	size_t n = 0, failed = 0;
	int r, lone = 0;

	if ((r = req_ids(req, &ids, &n, cause)) != 0)
		return r;
	if (hash != NULL && n != 1) {
		moat_cause_set(cause, "\"hash\" names the rule of one proposal;"
		    " approve one id at a time with it");
		free(ids);
		return MOAT_ERR_INVALID;
	}
	res = json_array();
	for (size_t i = 0; i < n; i++) {
		struct moat_cause c1 = { { 0 } };
		struct moat_diags d1;
		int version = 0;

		moat_diags_init(&d1);
		r = moatd_proposal_approve(p->d, ids[i], p->who, hash,
		    &version, &d1, &c1);
		if (r == 0)
			json_array_append_new(res, json_pack("{s:I, s:b, s:i}",
			    "id", (json_int_t)ids[i], "ok", 1, "version",
			    version));
		else {
			failed++;
			json_array_append_new(res, json_pack("{s:I, s:b, s:s,"
			    " s:o}", "id", (json_int_t)ids[i], "ok", 0,
			    "error", moat_cause_str(&c1, r), "diags",
			    ctl_diags_json(&d1)));
			/* A lone approval's diags go in the error reply too. */
			if (n == 1) {
				for (size_t k = 0; k < d1.n; k++)
					moat_diags_add(diags, d1.v[k].level,
					    d1.v[k].path, "%s", d1.v[k].msg);
				moat_cause_set(cause, "%s",
				    moat_cause_str(&c1, r));
				lone = r;
			}
		}
		moat_diags_free(&d1);
	}
	free(ids);
	if (lone != 0) {
		json_decref(res);
		return lone;
	}
	json_object_set_new(reply, "results", res);
	if (failed > 0) {
		/* Partial success is still a failed request; say which. */
		json_object_set_new(reply, "ok", json_false());
		json_object_set_new(reply, "error", json_sprintf("%zu of %zu "
		    "approvals failed", failed, n));
		json_object_set_new(reply, "code", json_string("partial"));
	}
	return MOAT_OK;
}

int
moatd_ctl_proposals_reject(const struct ctl_peer *p, json_t *req,
    json_t *reply, struct moat_diags *diags, struct moat_cause *cause)
{
	const char *reason = json_string_value(json_object_get(req,
	    "reason"));
	int64_t *ids = NULL;
	size_t n = 0;
	int r;

	if ((r = req_ids(req, &ids, &n, cause)) != 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++)
		r = moatd_proposal_reject(p->d, ids[i], p->who, reason, cause);
	free(ids);
	return r;
}
