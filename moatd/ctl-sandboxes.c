/* Control command `sandboxes`: names, policy versions, pending counts. */
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
		const struct moat_policy *pol;
		json_int_t pending = 0;
		int version = 0;

		pol = moatd_policy_current(p->d, name, &version);
		moat_store_proposal_list(moatd_store(p->d), name,
		    MOAT_STORE_PENDING, count_row, &pending, NULL);
		json_array_append_new(a, json_pack("{s:s, s:i, s:s, s:I}",
		    "name", name, "policy_version", version, "policy_hash",
		    pol ? moat_policy_hash(pol) : "", "pending_proposals",
		    pending));
	}
	json_object_set_new(reply, "sandboxes", a);
	return MOAT_OK;
}
