/*
 * Merging one approved rule into a policy. What the operator approved is
 * exactly what gets merged: the rule's JSON is validated on its own first
 * (so messages name its own paths), then added to the base (a new key, or
 * an existing key with the same endpoints or the same binaries) and the
 * result is validated again as a whole.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "policies/internal.h"

static bool
array_has(json_t *arr, json_t *v)
{
	json_t *x;
	size_t i;

	json_array_foreach(arr, i, x)
		if (json_equal(x, v))
			return true;
	return false;
}

/* Append to base[key] every element of add[key] it does not hold yet. */
static int
union_array(json_t *base, json_t *add, const char *key)
{
	json_t *b = json_object_get(base, key), *a = json_object_get(add, key);
	json_t *v;
	size_t i;

	if (a == NULL)
		return 0;
	if (b == NULL)
		return json_object_set(base, key, a);
	json_array_foreach(a, i, v)
		if (!array_has(b, v) && json_array_append(b, v) != 0)
			return -1;
	return 0;
}

/* Do base[key] and add[key] hold the same elements (as sets)? */
static bool
same_set(json_t *base, json_t *add, const char *key)
{
	json_t *b = json_object_get(base, key), *a = json_object_get(add, key);
	json_t *v;
	size_t i;

	if (!json_is_array(a) || !json_is_array(b))
		return a == NULL && b == NULL;
	json_array_foreach(a, i, v)
		if (!array_has(b, v))
			return false;
	json_array_foreach(b, i, v)
		if (!array_has(a, v))
			return false;
	return true;
}

/*
 * Into an existing key only what was approved is granted: a union of
 * endpoints and binaries would give the old binaries the new endpoints
 * and the new binaries the old ones. So the rule must have the same
 * endpoints (its binaries are added) or the same binaries (its endpoints
 * are added); anything else needs a new key.
 * 0, -1 (out of memory), or MOAT_ERR_INVALID with a diagnostic.
 */
static int
merge_doc(json_t *doc, json_t *rule, struct moat_diags *d)
{
	json_t *np = json_object_get(doc, "network_policies"), *v, *cur;
	const char *key;

	if (np == NULL) {
		if ((np = json_object()) == NULL ||
		    json_object_set_new(doc, "network_policies", np) != 0)
			return -1;
	}
	json_object_foreach(rule, key, v) {
		if ((cur = json_object_get(np, key)) == NULL) {
			if (json_object_set(np, key, v) != 0)
				return -1;
			continue;
		}
		if (same_set(cur, v, "endpoints")) {
			if (union_array(cur, v, "binaries") != 0)
				return -1;
		} else if (same_set(cur, v, "binaries")) {
			if (union_array(cur, v, "endpoints") != 0)
				return -1;
		} else {
			char path[160];

			snprintf(path, sizeof(path), "network_policies.%s", key);
			moat_diags_add(d, MOAT_DIAG_ERROR, path,
			    "rule '%s' already exists with "
			    "other endpoints and binaries; merging would grant "
			    "more than this rule says (its binaries the new "
			    "endpoints, the new binaries its endpoints): give "
			    "the rule a new name", key);
			return MOAT_ERR_INVALID;
		}
	}
	return 0;
}

int
moat_policy_merge_rule(const struct moat_policy *base, const char *rule_json,
    const struct moat_policy_opts *o, struct moat_policy **out,
    struct moat_diags *d)
{
	struct moat_policy *check = NULL;
	struct moat_diags scratch;
	json_t *rule = NULL, *alone = NULL, *doc = NULL;
	json_error_t jerr;
	int r = MOAT_ERR_NOMEM;

	moat_diags_init(&scratch);
	rule = json_loads(rule_json, JSON_REJECT_DUPLICATES, &jerr);
	if (rule == NULL || !json_is_object(rule) || json_object_size(rule) == 0) {
		moat_diags_add(d, MOAT_DIAG_ERROR, "", "a rule must be a JSON "
		    "object {\"KEY\": {...}}%s%s", rule == NULL ? ": " : "",
		    rule == NULL ? jerr.text : "");
		r = MOAT_ERR_INVALID;
		goto out;
	}
	if ((alone = json_pack("{s:i, s:O}", "version", 1, "network_policies",
	    rule)) == NULL)
		goto out;
	if ((r = pol_load_doc(alone, o, &check, d != NULL ? d : &scratch)) !=
	    MOAT_OK)
		goto out;
	doc = base != NULL ? json_loads(base->json, 0, NULL) :
	    json_pack("{s:i}", "version", 1);
	r = MOAT_ERR_NOMEM;
	if (doc == NULL)
		goto out;
	if ((r = merge_doc(doc, rule, d != NULL ? d : &scratch)) != 0) {
		if (r != MOAT_ERR_INVALID)
			r = MOAT_ERR_NOMEM;
		goto out;
	}
	moat_diags_free(&scratch);
	r = pol_load_doc(doc, o, out, &scratch);
	/* Only new problems of the union matter; notes were given above. */
	for (size_t i = 0; d != NULL && i < scratch.n; i++)
		if (scratch.v[i].level == MOAT_DIAG_ERROR)
			moat_diags_add(d, MOAT_DIAG_ERROR, scratch.v[i].path,
			    "%s", scratch.v[i].msg);
out:
	moat_policy_free(check);
	moat_diags_free(&scratch);
	json_decref(rule);
	json_decref(alone);
	json_decref(doc);
	return r;
}
