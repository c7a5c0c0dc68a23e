/*
 * Policy swaps: connections that have decided (resolving, connecting,
 * tunnels, tunnels looked into) are decided again with the new snapshot,
 * their cached caller and host:port (and the address dialled); denied
 * ones get a 403 before their 200, or are closed.
 */
#include <stdio.h>
#include <string.h>

#include "proxy/conn.h"

void
px_conn_redecide(struct px_conn *c)
{
	struct moat_caller caller = { 0 };
	struct moat_decision d;
	struct moat_denial_event ev;
	struct px_sandbox *sb = c->sb;
	const struct sockaddr_storage *addrs;
	size_t naddrs;
	const char *host, *why = NULL;
	char ip[64] = "";

	/* Not decided yet (the newest snapshot will be used), or answered. */
	if ((c->st < ST_RESOLVE || c->st > ST_RELAY) && c->st != ST_L7)
		return;
	/* A forward request is a single request already decided. */
	if (c->st == ST_RELAY && c->kind == MOAT_HTTP_FORWARD)
		return;
	if (c->s != NULL) {
		caller.exe = c->s->id.bin[0].path;
		caller.ancestors = c->s->id.anc;
		caller.nancestors = c->s->id.nbin - 1;
		host = c->s->host;
		addrs = c->s->addrs;
		naddrs = c->s->naddrs;
	} else {
		/* A tunnel: its caller, and the one address it dialled. */
		caller.exe = c->who->exe;
		caller.ancestors = c->who->anc;
		caller.nancestors = c->who->nanc;
		host = c->who->host;
		addrs = &c->dialled;
		naddrs = 1;
	}
	memset(&d, 0, sizeof(d));
	if (sb->policy == NULL) {
		why = "the sandbox's policy was removed";
	} else {
		moat_policy_decide(sb->policy, &caller, host, c->port, &d);
		if (!d.allow)
			why = d.text;
	}
	for (size_t i = 0; why == NULL && i < naddrs; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&addrs[i];
		struct moat_decision d2 = d;
		if (!moat_policy_check_addr(&d2, sa)) {
			px_addr_str(sa, ip, sizeof(ip));
			why = d2.text;
			d = d2;
		}
	}
	/* Requests of a tunnel nobody reads can no longer be decided. */
	if (why == NULL && d.l7 && (c->st == ST_RELAY || c->st == ST_L7) &&
	    !px_l7_inspects(c))
		why = "the endpoint now has L7 rules, which this tunnel's "
		    "requests were not read for";
	if (why == NULL) {
		moat_policy_free(c->pol);
		c->pol = moat_policy_ref(sb->policy);
		c->version = sb->version;
		if (c->s != NULL)
			c->s->dec = d;
		return;
	}
	if (c->st != ST_RELAY && c->st != ST_L7) {
		c->version = sb->version;
		px_conn_deny(c, d.reason == MOAT_REASON_SSRF ? "ssrf" : (c->kind == MOAT_HTTP_CONNECT ? "connect" : "forward"),
		    d.reason == MOAT_REASON_SSRF ? "ssrf_denied" :
		    "policy_denied", why, ip[0] ? ip : NULL, d.policy);
		return;
	}
	/* Mid-tunnel there is no response to write: record and close. */
	c->version = sb->version;
	moat_policy_free(c->pol);
	c->pol = NULL;
	px_conn_event(c, &ev, d.reason == MOAT_REASON_SSRF ? "ssrf" : "connect",
	    why, ip[0] ? ip : NULL);
	ev.policy_version = sb->version;
	px_emit(c->p, &ev);
	log_info("sandbox %s: closing tunnel to %s:%u after policy change",
	    sb->name, host, (unsigned)c->port);
	px_conn_free(c);
}
