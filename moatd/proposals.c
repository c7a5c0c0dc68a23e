/*
 * The mechanistic mapper and the approve/reject paths. A denial becomes
 * a suggested network_policies entry named like OpenShell's
 * (allow_imap_gmail_com_993), deduplicated on (sandbox, binary, host,
 * port): a repeat bumps hits and last seen in the store, never adds a
 * row. Destinations no rule can open (#814 upstream: loopback,
 * link-local, metadata) are never proposed. A sandbox holds at most
 * limits.pending_proposals pending proposals: past that a new key is
 * counted as suppressed (once per key while it is cached), not stored.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/config.h"
#include "moatd/moatd.h"
#include "moatd/proposals.h"

#define HITS_CACHE_BUCKETS 4096
#define HITS_CACHE_MAX 100000

struct hits_entry {
	struct hits_entry *next;
	int64_t hits; /* total in the store after our last upsert */
	bool suppressed; /* kept out by the pending cap, counted once */
	char key[];
};

struct moatd_proposals {
	struct moatd *d;
	struct moatd_aggregator *agg; /* hears what the cap kept out */
	struct hits_entry *buckets[HITS_CACHE_BUCKETS];
	size_t n;
};

void
moatd_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32) {
		out[0] = '\0';
		return;
	}
	moat_hex(md, 32, out);
}

double
moatd_proposal_confidence(int64_t hits, size_t nnotes)
{
	double c = 0.5;

	/* +0.1 per doubling of hits: 1 -> 0.5, 2 -> 0.6, 16 -> 0.9. */
	for (int64_t h = hits; h > 1 && c < 0.95; h /= 2)
		c += 0.1;
	if (c > 0.95)
		c = 0.95;
	c -= 0.1 * (double)nnotes;
	if (c < 0.1)
		c = 0.1;
	/* Two decimals: what the operator sees is what is stored. */
	return (double)(int64_t)(c * 100 + 0.5) / 100;
}

/* ---- suggestions ---- */

static bool
parse_ip(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (s == NULL || *s == '\0')
		return false;
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

void
moatd_binary_notes(const struct moat_policy *cur, const char *binary,
    json_t *notes)
{
	char where[4200];

	if (moat_policy_binary_writable(cur, binary, where, sizeof(where)))
		json_array_append_new(notes, json_sprintf("%s is in %s, which "
		    "the sandbox can write: whatever a process puts there gets "
		    "this access", binary, where));
	if (moat_binary_is_interpreter(binary))
		json_array_append_new(notes, json_sprintf("%s is an "
		    "interpreter: every script it runs gets this access",
		    binary));
}

static bool
usual_port(int port)
{
	return port == 80 || port == 443 || port == 22 || port == 9418;
}

static void
name_from(char *out, size_t len, const char *prefix, const char *what,
    int port)
{
	size_t i, n;

	n = (size_t)snprintf(out, len, "%s", prefix);
	for (i = 0; what[i] != '\0' && n + 1 < len; i++) {
		char c = what[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		out[n++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ?
		    c : '_';
	}
	out[n] = '\0';
	if (port > 0 && n + 8 < len)
		snprintf(out + n, len - n, "_%d", port);
}

static int
suggest_trust(const struct moat_denial_event *ev, struct moatd_suggestion *s,
    json_t *notes, struct moat_cause *cause)
{
	const char *base = strrchr(ev->binary, '/');
	json_t *rule;

	if (ev->sha256[0] == '\0') {
		moat_cause_set(cause, "binary changed but its new hash is "
		    "unknown");
		return MOAT_ERR_DENIED;
	}
	s->origin = MOATD_ORIGIN_BINARY_CHANGED;
	snprintf(s->key, sizeof(s->key), "%s|%s|sha256:%s", ev->sandbox,
	    ev->binary, ev->sha256);
	name_from(s->name, sizeof(s->name), "trust_", base ? base + 1 :
	    ev->binary, 0);
	rule = json_pack("{s:{s:s, s:s}}", "trust", "binary", ev->binary,
	    "sha256", ev->sha256);
	if (rule == NULL)
		return MOAT_ERR_NOMEM;
	s->rule_json = json_dumps(rule, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rule);
	json_array_append_new(notes, json_sprintf("%s changed (new sha256 "
	    "%.12s...); approve only if you upgraded it yourself",
	    ev->binary, ev->sha256));
	return s->rule_json ? MOAT_OK : MOAT_ERR_NOMEM;
}

void
moatd_public_only_note(const char *host, const char *resolved,
    json_t *notes)
{
	if (resolved != NULL)
		json_array_append_new(notes, json_sprintf("%s resolved to "
		    "private address %s: the rule is public_only, so approving "
		    "it does not open that address; add allowed_ips covering "
		    "it by hand to do so", host, resolved));
	else
		json_array_append_new(notes, json_sprintf("%s is a host name: "
		    "the rule is public_only, so should it resolve into a "
		    "private (RFC 1918), CGNAT (100.64/10) or ULA (fc00::/7) "
		    "range (a LAN, Docker, Tailscale) it is denied until "
		    "allowed_ips covers the address", host));
}

/*
 * Which destinations can never be opened by a rule, and why; notes for
 * the internal ones. *info is set when the note only informs (a name's
 * rule is public_only, so approving it opens nothing internal).
 */
static int
check_destination(const struct moat_denial_event *ev, const char *host,
    json_t *notes, bool *info, struct moat_cause *cause)
{
	struct sockaddr_storage ss;
	const char *addr = ev->ip[0] ? ev->ip : host;
	enum moat_addr_class cls = MOAT_ADDR_PUBLIC;

	if (strcmp(host, "localhost") == 0 ||
	    fnmatch("*.localhost", host, 0) == 0 ||
	    strcmp(host, "metadata.google.internal") == 0) {
		moat_cause_set(cause, "%s is a loopback or metadata name", host);
		return MOAT_ERR_DENIED;
	}
	if (parse_ip(addr, &ss))
		cls = moat_addr_classify((struct sockaddr *)&ss);
	if (cls == MOAT_ADDR_ALWAYS_BLOCKED || cls == MOAT_ADDR_METADATA) {
		moat_cause_set(cause, "%s (%s) is %s: no rule can allow it",
		    host, addr, moat_addr_class_name(cls));
		return MOAT_ERR_DENIED;
	}
	*info = !moat_host_is_ip_literal(host);
	if (*info)
		moatd_public_only_note(host, cls == MOAT_ADDR_INTERNAL ? addr :
		    NULL, notes);
	else if (cls == MOAT_ADDR_INTERNAL)
		json_array_append_new(notes, json_sprintf("%s is a private "
		    "address (%s): allowing it opens the internal network",
		    addr, moat_addr_class_name(cls)));
	return MOAT_OK;
}

static int
suggest_allow(const struct moat_denial_event *ev,
    const struct moat_policy *cur, struct moatd_suggestion *s,
    json_t *notes, struct moat_cause *cause)
{
	json_t *rule;
	int r;

	if (!moat_host_normalize(ev->host[0] ? ev->host : ev->ip, s->host,
	    sizeof(s->host))) {
		moat_cause_set(cause, "'%s' is not a valid host", ev->host);
		return MOAT_ERR_DENIED;
	}
	if ((r = check_destination(ev, s->host, notes, &s->public_only,
	    cause)) != 0)
		return r;
	s->origin = MOATD_ORIGIN_MECHANISTIC;
	snprintf(s->key, sizeof(s->key), "%s|%s|%s|%d", ev->sandbox,
	    ev->binary, s->host, ev->port);
	name_from(s->name, sizeof(s->name), "allow_", s->host, ev->port);
	if (!usual_port(ev->port))
		json_array_append_new(notes, json_sprintf("port %d is unusual "
		    "(not 22, 80, 443 or 9418)", ev->port));
	moatd_binary_notes(cur, ev->binary, notes);
	if (ev->method[0] != '\0' && ev->path[0] == '/') {
		/* An L7 denial: the request, not the whole host. */
		char what[600];

		snprintf(s->key + strlen(s->key), sizeof(s->key) -
		    strlen(s->key), "|%s|%s", ev->method, ev->path);
		snprintf(what, sizeof(what), "%s_%s%s", s->host, ev->method,
		    ev->path);
		name_from(s->name, 120, "allow_", what, 0);
		rule = json_pack("{s:{s:s, s:[{s:s, s:i, s:s, s:[{s:{s:s, "
		    "s:s}}]}], s:[{s:s}]}}", s->name, "name", s->name,
		    "endpoints", "host", s->host, "port", ev->port, "protocol",
		    "rest", "rules", "allow", "method", ev->method, "path",
		    ev->path, "binaries", "path", ev->binary);
		/* A name an agent chose may later resolve into the LAN. */
		if (rule != NULL && s->public_only)
			json_object_set_new(json_array_get(json_object_get(
			    json_object_get(rule, s->name), "endpoints"), 0),
			    "public_only", json_true());
	} else if (s->public_only) {
		/* A name an agent chose may later resolve into the LAN. */
		rule = json_pack("{s:{s:s, s:[{s:s, s:i, s:b}], s:[{s:s}]}}",
		    s->name, "name", s->name, "endpoints", "host", s->host,
		    "port", ev->port, "public_only", 1, "binaries", "path",
		    ev->binary);
	} else {
		rule = json_pack("{s:{s:s, s:[{s:s, s:i}], s:[{s:s}]}}",
		    s->name, "name", s->name, "endpoints", "host", s->host,
		    "port", ev->port, "binaries", "path", ev->binary);
	}
	if (rule == NULL)
		return MOAT_ERR_NOMEM;
	s->rule_json = json_dumps(rule, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rule);
	return s->rule_json ? MOAT_OK : MOAT_ERR_NOMEM;
}

int
moatd_proposal_suggest(const struct moat_denial_event *ev,
    const struct moat_policy *cur, struct moatd_suggestion *out,
    struct moat_cause *cause)
{
	struct moatd_suggestion s;
	json_t *notes = NULL;
	bool changed;
	int r;

	memset(&s, 0, sizeof(s));
	/* A changed binary is an identity denial an approval does fix. */
	changed = strncmp(ev->reason, "binary changed", 14) == 0;
	if (strcmp(ev->stage, "bypass") == 0 ||
	    (strcmp(ev->stage, "identity") == 0 && !changed) ||
	    strcmp(ev->stage, "credential") == 0 ||
	    strcmp(ev->stage, "tls") == 0 || (strcmp(ev->stage, "l7") == 0 &&
	    ev->path[0] != '/')) {
		moat_cause_set(cause, "stage %s: a rule cannot fix it",
		    ev->stage);
		return MOAT_ERR_DENIED;
	}
	if (ev->binary[0] != '/') {
		moat_cause_set(cause, "the calling binary is unknown");
		return MOAT_ERR_DENIED;
	}
	/* A cut or escaped name is not the real one: no rule can name it. */
	if ((ev->cut | ev->escaped) & (MOAT_EVF_BIT(MOAT_EVF_BINARY) |
	    MOAT_EVF_BIT(MOAT_EVF_HOST))) {
		moat_cause_set(cause, "the event's binary or host did not "
		    "arrive whole");
		return MOAT_ERR_DENIED;
	}
	if (ev->port <= 0 || ev->port > 65535 ||
	    (ev->host[0] == '\0' && ev->ip[0] == '\0')) {
		moat_cause_set(cause, "no destination");
		return MOAT_ERR_DENIED;
	}
	if ((notes = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	if (changed)
		r = suggest_trust(ev, &s, notes, cause);
	else
		r = suggest_allow(ev, cur, &s, notes, cause);
	if (r != 0)
		goto out;
	moatd_sha256_hex(s.rule_json, strlen(s.rule_json), s.rule_hash);
	/* The public_only note informs; the others warn (confidence). */
	s.nnotes = json_array_size(notes) - (s.public_only ? 1 : 0);
	if ((s.notes = json_dumps(notes, JSON_COMPACT)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	*out = s;
	memset(&s, 0, sizeof(s));
	r = MOAT_OK;
out:
	moatd_suggestion_clear(&s);
	json_decref(notes);
	return r;
}

void
moatd_suggestion_clear(struct moatd_suggestion *s)
{
	if (s == NULL)
		return;
	free(s->rule_json);
	free(s->notes);
	s->rule_json = NULL;
	s->notes = NULL;
}

/* ---- the engine ---- */

static struct hits_entry **
hits_slot(struct moatd_proposals *p, const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	struct hits_entry **e;

	for (const char *c = key; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	for (e = &p->buckets[h % HITS_CACHE_BUCKETS]; *e != NULL;
	    e = &(*e)->next)
		if (strcmp((*e)->key, key) == 0)
			break;
	return e;
}

static void
hits_clear(struct moatd_proposals *p)
{
	for (size_t i = 0; i < HITS_CACHE_BUCKETS; i++) {
		struct hits_entry *e = p->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
		p->buckets[i] = NULL;
	}
	p->n = 0;
}

int
moatd_proposals_new(struct moatd *d, struct moatd_aggregator *agg,
    struct moatd_proposals **out)
{
	struct moatd_proposals *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return MOAT_ERR_NOMEM;
	p->d = d;
	p->agg = agg;
	*out = p;
	return MOAT_OK;
}

void
moatd_proposals_free(struct moatd_proposals *p)
{
	if (p == NULL)
		return;
	hits_clear(p);
	free(p);
}

/* Is (binary, host, port) already allowed by the sandbox's policy? */
static bool
already_allowed(struct moatd *d, const struct moat_denial_event *ev,
    const char *host)
{
	const struct moat_policy *pol;
	const char *anc[MOAT_EV_MAX_ANCESTORS];
	struct moat_caller c = { 0 };
	struct moat_decision dec;
	int n = ev->nancestors, version = 0;

	if ((pol = moatd_policy_current(d, ev->sandbox, &version)) == NULL)
		return false;
	if (n < 0 || n > MOAT_EV_MAX_ANCESTORS)
		n = n < 0 ? 0 : MOAT_EV_MAX_ANCESTORS;
	for (int i = 0; i < n; i++)
		anc[i] = ev->ancestors[i];
	c.exe = ev->binary;
	c.ancestors = anc;
	c.nancestors = (size_t)n;
	if (ev->method[0] != '\0') {
		struct moat_l7_request rq = { ev->method, ev->path, NULL,
			false, false, NULL, 0 };

		if (moat_policy_decide_request(pol, &c, host,
		    (uint16_t)ev->port, &rq, &dec) != 0)
			return false;
		return dec.allow && !dec.audit;
	}
	if (moat_policy_decide(pol, &c, host, (uint16_t)ev->port, &dec) != 0)
		return false;
	return dec.allow && !dec.audit;
}

static struct hits_entry *
hits_add(struct moatd_proposals *p, struct hits_entry ***slot,
    const char *key)
{
	struct hits_entry *e;

	if (p->n >= HITS_CACHE_MAX) {
		hits_clear(p);
		*slot = hits_slot(p, key);
	}
	if ((e = calloc(1, sizeof(*e) + strlen(key) + 1)) == NULL)
		return NULL;
	strcpy(e->key, key);
	**slot = e;
	p->n++;
	return e;
}

/* The pending cap kept key out: count it once while it is cached. */
static int
suppressed(struct moatd_proposals *p, struct hits_entry **slot,
    const char *key, const struct moat_denial_event *ev,
    const struct moatd_denial_group *g)
{
	struct hits_entry *e = *slot;

	if (e == NULL && (e = hits_add(p, &slot, key)) == NULL)
		return MOAT_ERR_NOMEM;
	if (!e->suppressed)
		moatd_aggregator_suppressed(p->agg, ev->sandbox,
		    MOAT_STORE_SUPPRESSED_PROPOSALS, g->last_ms, 1);
	e->suppressed = true;
	return 0;
}

static int
feed_one(struct moatd_proposals *p, const struct moatd_denial_group *g)
{
	const struct moat_denial_event *ev = g->ev;
	const struct moat_policy *cur;
	struct moatd_suggestion s;
	struct moat_store_proposal sp = { 0 }, *got = NULL;
	struct moat_cause cause = { { 0 } };
	struct hits_entry **slot;
	int64_t id = 0, total;
	bool created = false;
	int r, version = 0;

	cur = moatd_policy_current(p->d, ev->sandbox, &version);
	if ((r = moatd_proposal_suggest(ev, cur, &s, &cause)) != 0)
		return r == MOAT_ERR_DENIED ? 0 : r;
	if (strcmp(s.origin, MOATD_ORIGIN_BINARY_CHANGED) != 0 &&
	    already_allowed(p->d, ev, s.host)) {
		r = 0;
		goto out;
	}
	slot = hits_slot(p, s.key);
	total = (*slot ? (*slot)->hits : 0) + g->count;
	sp.sandbox = (char *)ev->sandbox;
	sp.key = s.key;
	sp.name = s.name;
	sp.rule_json = s.rule_json;
	sp.rule_hash = s.rule_hash;
	sp.binary = (char *)ev->binary;
	sp.host = s.host[0] ? s.host : (char *)ev->host;
	sp.port = ev->port;
	sp.hits = g->count;
	sp.confidence = moatd_proposal_confidence(total, s.nnotes);
	sp.notes = s.notes;
	sp.origin = (char *)s.origin;
	sp.reason = (char *)ev->reason;
	sp.first_ms = g->first_ms;
	sp.last_ms = g->last_ms;
	r = moat_store_proposal_upsert_capped(moatd_store(p->d), &sp,
	    moatd_config(p->d)->limits.pending_proposals, &id, &created,
	    &cause);
	if (r == MOAT_ERR_DENIED) {
		r = suppressed(p, slot, s.key, ev, g);
		goto out;
	}
	if (r != 0) {
		log_warn_r(r, "proposal %s: %s", s.key, cause.msg);
		goto out;
	}
	if (*slot != NULL)
		(*slot)->suppressed = false;
	if (*slot == NULL) {
		/* First sight in this process: learn the stored total. */
		if (moat_store_proposal_get(moatd_store(p->d), id, &got,
		    NULL) == 0)
			total = got->hits;
		moat_store_proposal_free(got);
		hits_add(p, &slot, s.key);
	}
	if (*slot != NULL)
		(*slot)->hits = total;
	if (created)
		moatd_export_proposal(moatd_exporter(p->d), id, ev->sandbox,
		    MOAT_STORE_PENDING, "moatd");
	r = 1;
out:
	moatd_suggestion_clear(&s);
	return r;
}

size_t
moatd_proposals_feed(struct moatd_proposals *p,
    const struct moatd_denial_group *g, size_t n)
{
	size_t done = 0;

	for (size_t i = 0; i < n; i++)
		if (feed_one(p, &g[i]) > 0)
			done++;
	return done;
}

/* ---- approve, reject ---- */

static int
approve_trust(struct moatd *d, const struct moat_store_proposal *sp,
    struct moat_cause *cause)
{
	json_t *doc = NULL;
	const char *bin = NULL, *sha = NULL;
	int r;

	doc = json_loads(sp->rule_json, 0, NULL);
	if (doc == NULL || json_unpack(doc, "{s:{s:s, s:s}}", "trust",
	    "binary", &bin, "sha256", &sha) != 0) {
		moat_cause_set(cause, "proposal #%lld: stored trust rule is "
		    "malformed", (long long)sp->id);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	r = moatd_trust_binary(d, sp->sandbox, bin, sha, cause);
out:
	json_decref(doc);
	return r;
}

static int
approve_rule(struct moatd *d, const struct moat_store_proposal *sp,
    const char *who, int *version, struct moat_diags *diags,
    struct moat_cause *cause)
{
	const struct moat_policy_opts opts = { .no_fs = true };
	const struct moat_policy *cur;
	struct moat_policy *merged = NULL;
	char note[64];
	int r, curver = 0;

	/* Always onto the CURRENT policy: approvals never lose a version. */
	if ((cur = moatd_policy_current(d, sp->sandbox, &curver)) == NULL) {
		moat_cause_set(cause, "sandbox %s has no policy (is it still "
		    "configured?)", sp->sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	if ((r = moat_policy_merge_rule(cur, sp->rule_json, &opts, &merged,
	    diags)) != 0) {
		moat_cause_set(cause, "proposal #%lld does not merge into "
		    "policy version %d of %s", (long long)sp->id, curver,
		    sp->sandbox);
		return r;
	}
	snprintf(note, sizeof(note), "proposal #%lld", (long long)sp->id);
	r = moatd_policy_apply(d, sp->sandbox, moat_policy_json(merged),
	    "proposal", who, note, version, diags, cause);
	moat_policy_free(merged);
	return r;
}

int
moatd_proposal_approve(struct moatd *d, int64_t id, const char *who,
    const char *want_hash, int *version, struct moat_diags *diags,
    struct moat_cause *cause)
{
	struct moat_store_proposal *sp = NULL;
	char hash[65], note[64];
	int r, ver = 0;

	if ((r = moat_store_proposal_get(moatd_store(d), id, &sp, cause)) != 0)
		goto out;
	if (strcmp(sp->status, MOAT_STORE_PENDING) != 0) {
		moat_cause_set(cause, "proposal #%lld is already %s",
		    (long long)id, sp->status);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	moatd_sha256_hex(sp->rule_json, strlen(sp->rule_json), hash);
	if (strcmp(hash, sp->rule_hash) != 0) {
		moat_cause_set(cause, "proposal #%lld: stored rule does not "
		    "match its hash; refusing", (long long)id);
		r = MOAT_ERR_INTERNAL;
		goto out;
	}
	/* A prefix of 8+ hex digits may stand for the reviewed hash. */
	if (want_hash != NULL && *want_hash != '\0' &&
	    (strlen(want_hash) < 8 ||
	    strncmp(want_hash, hash, strlen(want_hash)) != 0)) {
		moat_cause_set(cause, "proposal #%lld's rule hash is %.16s, "
		    "not %.16s: the rule changed since it was reviewed, or the "
		    "hash is mistyped; look at `moat proposals` again",
		    (long long)id, hash, want_hash);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	if (strcmp(sp->origin, MOATD_ORIGIN_BINARY_CHANGED) == 0)
		r = approve_trust(d, sp, cause);
	else
		r = approve_rule(d, sp, who, &ver, diags, cause);
	if (r != 0)
		goto out;
	if (ver > 0)
		snprintf(note, sizeof(note), "policy version %d", ver);
	else
		snprintf(note, sizeof(note), "new binary hash trusted");
	if ((r = moat_store_proposal_set_status(moatd_store(d), id,
	    MOAT_STORE_APPROVED, who, note, cause)) != 0) {
		log_error_r(r, "proposal #%lld applied (%s) but not marked "
		    "approved: %s", (long long)id, note, cause ? cause->msg :
		    "");
		goto out;
	}
	moatd_export_proposal(moatd_exporter(d), id, sp->sandbox,
	    MOAT_STORE_APPROVED, who);
	if (version != NULL)
		*version = ver;
	r = MOAT_OK;
out:
	moat_store_proposal_free(sp);
	return r;
}

int
moatd_proposal_reject(struct moatd *d, int64_t id, const char *who,
    const char *reason, struct moat_cause *cause)
{
	struct moat_store_proposal *sp = NULL;
	int r;

	if ((r = moat_store_proposal_get(moatd_store(d), id, &sp, cause)) != 0)
		return r;
	r = moat_store_proposal_set_status(moatd_store(d), id,
	    MOAT_STORE_REJECTED, who, reason, cause);
	if (r == 0)
		moatd_export_proposal(moatd_exporter(d), id, sp->sandbox,
		    MOAT_STORE_REJECTED, who);
	moat_store_proposal_free(sp);
	return r;
}
