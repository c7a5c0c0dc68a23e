/*
 * Control commands `sandboxes` (names, whether each runs, the active
 * policy version (the store's), what the proxy acknowledged, pending
 * counts), `sandboxes.stop`, `sandboxes.start` and `shutdown`.
 */
#include <string.h>

#include <jansson.h>

#include "store/store.h"
#include "moatd/moatd.h"
#include "moatd/ctl.h"

static int
count_row(const struct moat_store_proposal *sp, void *arg)
{
	(*(json_int_t *)arg)++;
	return 0;
}

int
moatd_ctl_sandboxes(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	json_t *a = json_array();

	if (a == NULL)
		return MOAT_ERR_NOMEM;
	for (size_t i = 0; i < moatd_sandbox_count(p->d); i++) {
		const char *name = moatd_sandbox_name(p->d, i);
		struct moat_store_policy *sp = NULL;
		const char *perr = "";
		json_int_t pending = 0;
		int active = 0, pv = 0;

		/* The store's word, not moatd's copy: they must agree. */
		if (moat_store_policy_get(moatd_store(p->d), name, 0, &sp,
		    NULL) == 0)
			active = sp->version;
		moatd_policy_enforced(p->d, name, &pv, &perr);
		moat_store_proposal_list(moatd_store(p->d), name,
		    MOAT_STORE_PENDING, count_row, &pending, NULL);
		json_array_append_new(a, json_pack("{s:s, s:b, s:i, s:s, s:i,"
		    " s:s, s:b, s:I}", "name", name, "running",
		    moatd_sandbox_running(p->d, name), "policy_version", active,
		    "policy_hash", sp ? sp->hash : "", "proxy_version", pv,
		    "proxy_error", perr, "policy_mismatch",
		    moat_store_proxy_mismatch(active, pv, perr), "pending_proposals",
		    pending));
		moat_store_policy_free(sp);
	}
	json_object_set_new(reply, "sandboxes", a);
	return MOAT_OK;
}

int
moatd_ctl_sandboxes_stop(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	const char *sb;
	int r;

	if ((r = ctl_sandbox(p, req, &sb, cause)) != 0 ||
	    (r = moatd_sandbox_stop_named(p->d, sb, cause)) != 0)
		return r;
	json_object_set_new(reply, "sandbox", json_string(sb));
	return MOAT_OK;
}

int
moatd_ctl_sandboxes_start(const struct ctl_peer *p, json_t *req,
    json_t *reply, struct moat_diags *diags, struct moat_cause *cause)
{
	const char *sb;
	int r;

	if ((r = ctl_sandbox(p, req, &sb, cause)) != 0 ||
	    (r = moatd_sandbox_start_named(p->d, sb, cause)) != 0)
		return r;
	json_object_set_new(reply, "sandbox", json_string(sb));
	return MOAT_OK;
}

int
moatd_ctl_shutdown(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	/* The reply is written before the loop ends (one turn later). */
	moatd_shutdown(p->d);
	json_object_set_new(reply, "shutdown", json_true());
	return MOAT_OK;
}
