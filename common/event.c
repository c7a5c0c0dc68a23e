#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/jsonl.h"
#include "common/event.h"

void
moat_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n;

	if (size == 0)
		return;
	if (src == NULL)
		src = "";
	n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

json_t *
moat_denial_event_json(const struct moat_denial_event *ev)
{
	json_t *o = NULL, *anc = NULL;

	o = json_object();
	anc = json_array();
	if (o == NULL || anc == NULL) {
		json_decref(o);
		json_decref(anc);
		return NULL;
	}
	for (int i = 0; i < ev->nancestors && i < MOAT_EV_MAX_ANCESTORS; i++)
		json_array_append_new(anc, json_string(ev->ancestors[i]));
	json_object_set_new(o, "ts_ms", json_integer(ev->ts_ms));
	json_object_set_new(o, "sandbox", json_string(ev->sandbox));
	json_object_set_new(o, "stage", json_string(ev->stage));
	json_object_set_new(o, "binary", json_string(ev->binary));
	json_object_set_new(o, "sha256", json_string(ev->sha256));
	json_object_set_new(o, "ancestors", anc);
	json_object_set_new(o, "pid", json_integer(ev->pid));
	json_object_set_new(o, "uid", json_integer(ev->uid));
	json_object_set_new(o, "host", json_string(ev->host));
	json_object_set_new(o, "ip", json_string(ev->ip));
	json_object_set_new(o, "port", json_integer(ev->port));
	json_object_set_new(o, "protocol", json_string(ev->protocol));
	json_object_set_new(o, "reason", json_string(ev->reason));
	json_object_set_new(o, "policy_version",
	    json_integer(ev->policy_version));
	return o;
}

static void
get_str(json_t *o, const char *key, char *dst, size_t size)
{
	json_t *v = json_object_get(o, key);

	moat_strlcpy(dst, json_is_string(v) ? json_string_value(v) : "", size);
}

static int64_t
get_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int
moat_denial_event_from_json(json_t *o, struct moat_denial_event *ev,
    struct moat_cause *cause)
{
	json_t *anc;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = get_int(o, "ts_ms");
	get_str(o, "sandbox", ev->sandbox, sizeof(ev->sandbox));
	get_str(o, "stage", ev->stage, sizeof(ev->stage));
	get_str(o, "binary", ev->binary, sizeof(ev->binary));
	get_str(o, "sha256", ev->sha256, sizeof(ev->sha256));
	anc = json_object_get(o, "ancestors");
	if (json_is_array(anc)) {
		for (i = 0; i < json_array_size(anc) &&
		     i < MOAT_EV_MAX_ANCESTORS; i++) {
			json_t *a = json_array_get(anc, i);
			moat_strlcpy(ev->ancestors[i],
			    json_is_string(a) ? json_string_value(a) : "",
			    sizeof(ev->ancestors[i]));
		}
		ev->nancestors = (int)i;
	}
	ev->pid = (int)get_int(o, "pid");
	ev->uid = (int)get_int(o, "uid");
	get_str(o, "host", ev->host, sizeof(ev->host));
	get_str(o, "ip", ev->ip, sizeof(ev->ip));
	ev->port = (int)get_int(o, "port");
	get_str(o, "protocol", ev->protocol, sizeof(ev->protocol));
	get_str(o, "reason", ev->reason, sizeof(ev->reason));
	ev->policy_version = (int)get_int(o, "policy_version");
	if (ev->sandbox[0] == '\0' || ev->stage[0] == '\0') {
		moat_cause_set(cause, "event: missing sandbox or stage");
		return MOAT_ERR_INVALID;
	}
	return MOAT_OK;
}

int
moat_denial_event_decode(const char *line, size_t len,
    struct moat_denial_event *ev, struct moat_cause *cause)
{
	json_t *o = NULL;
	int r;

	if ((r = moat_jsonl_decode(line, len, &o, cause)) != 0)
		return r;
	r = moat_denial_event_from_json(o, ev, cause);
	json_decref(o);
	return r;
}
