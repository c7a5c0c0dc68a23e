#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/escape.h"
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

/* Where each text field lives, by enum moat_ev_field. */
static const struct {
	const char *name;
	size_t off;
	size_t size;
} fields[MOAT_EVF_COUNT] = {
#define F(e, m) [e] = { #m, offsetof(struct moat_denial_event, m), \
	sizeof(((struct moat_denial_event *)0)->m) }
	F(MOAT_EVF_SANDBOX, sandbox),
	F(MOAT_EVF_STAGE, stage),
	F(MOAT_EVF_BINARY, binary),
	F(MOAT_EVF_SHA256, sha256),
	F(MOAT_EVF_ANCESTORS, ancestors[0]),
	F(MOAT_EVF_HOST, host),
	F(MOAT_EVF_IP, ip),
	F(MOAT_EVF_PROTOCOL, protocol),
	F(MOAT_EVF_REASON, reason),
#undef F
};

/*
 * Every byte of text may become a 6-byte JSON escape: the whole event
 * stays far below the channel's line limit, so it is never refused.
 */
_Static_assert(sizeof(struct moat_denial_event) * 6 + 4096 <
    MOAT_JSONL_MAX_LINE_DEFAULT, "a denial event must fit one JSON line");

const char *
moat_denial_event_field(enum moat_ev_field f)
{
	if (f == MOAT_EVF_ANCESTORS)
		return "ancestors";
	return (unsigned)f < MOAT_EVF_COUNT ? fields[f].name : "?";
}

/* The first byte of the UTF-8 character that holds s[i] (or s[i]). */
static size_t
char_start(const char *s, size_t i)
{
	while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
		i--;
	return i;
}

/* Copy src into dst[size]; say whether it was cut or escaped. */
static void
fit(const char *src, char *dst, size_t size, bool *cut, bool *escaped)
{
	size_t n = strlen(src), len, head, tail;
	char *tmp;

	*cut = *escaped = false;
	if (n < size && moat_utf8_valid(src, n)) {
		memcpy(dst, src, n + 1);
		return;
	}
	if ((tmp = malloc(n * 4 + 1)) == NULL) {
		/* Still whole characters, and still marked. */
		moat_utf8_fix(src, n, dst, size, cut);
		*escaped = !moat_utf8_valid(src, n);
		*cut = true;
		return;
	}
	*escaped = moat_utf8_fix(src, n, tmp, n * 4 + 1, NULL) > 0;
	if ((len = strlen(tmp)) < size) {
		memcpy(dst, tmp, len + 1);
	} else {
		/* The start and the end of a path say the most. */
		head = char_start(tmp, (size - 4) / 2);
		tail = len - (size - 4 - head);
		while (((unsigned char)tmp[tail] & 0xc0) == 0x80)
			tail++;
		memcpy(dst, tmp, head);
		memcpy(dst + head, "...", 3);
		memcpy(dst + head + 3, tmp + tail, len - tail + 1);
		*cut = true;
	}
	free(tmp);
}

void
moat_denial_event_set(struct moat_denial_event *ev, enum moat_ev_field f,
    const char *src)
{
	bool cut = false, escaped = false;
	char *dst;

	if ((unsigned)f >= MOAT_EVF_COUNT)
		return;
	if (f == MOAT_EVF_ANCESTORS) {
		if (ev->nancestors < 0)
			ev->nancestors = 0;
		if (ev->nancestors >= MOAT_EV_MAX_ANCESTORS) {
			ev->cut |= MOAT_EVF_BIT(f);
			return;
		}
		dst = ev->ancestors[ev->nancestors++];
	} else {
		dst = (char *)ev + fields[f].off;
	}
	fit(src != NULL ? src : "", dst, fields[f].size, &cut, &escaped);
	if (cut)
		ev->cut |= MOAT_EVF_BIT(f);
	if (escaped)
		ev->escaped |= MOAT_EVF_BIT(f);
}

static void
marks_list(uint32_t bits, const char *what, char *buf, size_t len)
{
	size_t o = strlen(buf);
	bool first = true;

	for (int f = 0; f < MOAT_EVF_COUNT; f++) {
		if (!(bits & MOAT_EVF_BIT(f)) || o >= len)
			continue;
		snprintf(buf + o, len - o, "%s%s%s", first ? (o > 0 ? "; " :
		    "") : ", ", first ? what : "", moat_denial_event_field(f));
		o = strlen(buf);
		first = false;
	}
}

void
moat_denial_event_marks(const struct moat_denial_event *ev, char *buf,
    size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	marks_list(ev->cut, "cut: ", buf, len);
	marks_list(ev->escaped, "not UTF-8: ", buf, len);
}

/*
 * A text field as a JSON string. The setter keeps fields UTF-8; one
 * filled some other way is fixed here and marked, never left out.
 */
static json_t *
text_json(const char *s, size_t size, enum moat_ev_field f, uint32_t *esc)
{
	size_t n = strnlen(s, size);
	char *tmp;
	json_t *j;

	if (moat_utf8_valid(s, n))
		return json_stringn(s, n);
	if ((tmp = malloc(n * 4 + 1)) == NULL)
		return NULL;
	moat_utf8_fix(s, n, tmp, n * 4 + 1, NULL);
	*esc |= MOAT_EVF_BIT(f);
	j = json_string(tmp);
	free(tmp);
	return j;
}

json_t *
moat_denial_event_marks_json(uint32_t bits)
{
	json_t *a = json_array();

	for (int f = 0; f < MOAT_EVF_COUNT; f++)
		if (bits & MOAT_EVF_BIT(f))
			json_array_append_new(a, json_string(
			    moat_denial_event_field(f)));
	return a;
}

json_t *
moat_denial_event_json(const struct moat_denial_event *ev)
{
	json_t *o = NULL, *anc = NULL;
	uint32_t esc = ev->escaped;

	o = json_object();
	anc = json_array();
	if (o == NULL || anc == NULL) {
		json_decref(o);
		json_decref(anc);
		return NULL;
	}
	for (int i = 0; i < ev->nancestors && i < MOAT_EV_MAX_ANCESTORS; i++)
		json_array_append_new(anc, text_json(ev->ancestors[i],
		    sizeof(ev->ancestors[i]), MOAT_EVF_ANCESTORS, &esc));
	json_object_set_new(o, "ts_ms", json_integer(ev->ts_ms));
	for (int f = 0; f < MOAT_EVF_COUNT; f++) {
		if (f == MOAT_EVF_ANCESTORS)
			continue;
		json_object_set_new(o, fields[f].name, text_json((const char *)
		    ev + fields[f].off, fields[f].size, f, &esc));
	}
	json_object_set_new(o, "ancestors", anc);
	json_object_set_new(o, "pid", json_integer(ev->pid));
	json_object_set_new(o, "uid", json_integer(ev->uid));
	json_object_set_new(o, "port", json_integer(ev->port));
	json_object_set_new(o, "policy_version",
	    json_integer(ev->policy_version));
	if (ev->cut != 0)
		json_object_set_new(o, "cut",
		    moat_denial_event_marks_json(ev->cut));
	if (esc != 0)
		json_object_set_new(o, "escaped",
		    moat_denial_event_marks_json(esc));
	if (ev->method[0] != '\0')
		json_object_set_new(o, "method", json_string(ev->method));
	if (ev->path[0] != '\0')
		json_object_set_new(o, "path", json_string(ev->path));
	return o;
}

static void
get_str(json_t *o, const char *key, struct moat_denial_event *ev,
    enum moat_ev_field f)
{
	json_t *v = json_object_get(o, key);

	moat_denial_event_set(ev, f, json_is_string(v) ?
	    json_string_value(v) : "");
}

static int64_t
get_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* The marks an event arrived with: a list of field names. */
static uint32_t
get_marks(json_t *o, const char *key)
{
	json_t *a = json_object_get(o, key), *v;
	uint32_t bits = 0;
	size_t i;

	json_array_foreach(a, i, v) {
		for (int f = 0; f < MOAT_EVF_COUNT; f++)
			if (json_is_string(v) && strcmp(json_string_value(v),
			    moat_denial_event_field(f)) == 0)
				bits |= MOAT_EVF_BIT(f);
	}
	return bits;
}

int
moat_denial_event_from_json(json_t *o, struct moat_denial_event *ev,
    struct moat_cause *cause)
{
	json_t *anc, *a;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = get_int(o, "ts_ms");
	for (int f = 0; f < MOAT_EVF_COUNT; f++)
		if (f != MOAT_EVF_ANCESTORS)
			get_str(o, fields[f].name, ev, f);
	anc = json_object_get(o, "ancestors");
	json_array_foreach(anc, i, a)
		moat_denial_event_set(ev, MOAT_EVF_ANCESTORS,
		    json_is_string(a) ? json_string_value(a) : "");
	ev->pid = (int)get_int(o, "pid");
	ev->uid = (int)get_int(o, "uid");
	ev->port = (int)get_int(o, "port");
	ev->policy_version = (int)get_int(o, "policy_version");
	ev->cut |= get_marks(o, "cut");
	ev->escaped |= get_marks(o, "escaped");
	/* A request's method and path: ASCII (the proxy's parser). */
	moat_strlcpy(ev->method, json_string_value(json_object_get(o,
	    "method")), sizeof(ev->method));
	moat_strlcpy(ev->path, json_string_value(json_object_get(o, "path")),
	    sizeof(ev->path));
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
