/*
 * Bypass events: a packet the sandbox ruleset rejected (moatd reads the
 * NFLOG socket and parses it) becomes a denial with stage "bypass". For
 * TCP the sender is named by the same identity code as a connection's
 * caller: from the kernel's record of the SYN's 4-tuple (BPF), else
 * from the socket if it still exists; its hash comes from the TOFU cache
 * only, never from new work. Emitted once the sender is named.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nflog.h"
#include "common/util.h"
#include "proxy/internal.h"

#define BYPASS_PENDING 16 /* per sandbox */

static const char *
proto_name(int proto, char *buf, size_t len)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	case IPPROTO_SCTP:
		return "sctp";
	default:
		snprintf(buf, len, "%d", proto);
		return buf;
	}
}

static void
to_sockaddr(int family, const void *addr, uint16_t port,
    struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		memcpy(&s->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		memcpy(&s->sin6_addr, addr, 16);
	}
}

/* A TCP bypass waiting for its sender to be named. */
struct px_bypass {
	struct moat_proxy *p;
	struct px_sandbox *sb;
	struct moat_denial_event ev;
	struct px_work *job;
	struct px_bypass *next;
};

static void
unlink_bypass(struct px_bypass *b)
{
	struct px_bypass **pp;

	for (pp = &b->p->bypass; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	b->sb->nbypass--;
	b->p->nbypass--;
}

/* The sender's binary, ancestors, pid and uid into the event. */
static void
name_sender(struct moat_proxy *p, const struct px_identity *id,
    struct moat_denial_event *ev)
{
	if (id->nbin > 0) {
		moat_denial_event_set(ev, MOAT_EVF_BINARY, id->bin[0].path);
		if (id->bin[0].have_st)
			px_hasher_cached(p->hasher, &id->bin[0].st,
			    ev->sha256);
		for (size_t i = 1; i < id->nbin; i++)
			moat_denial_event_set(ev, MOAT_EVF_ANCESTORS,
			    id->bin[i].path);
		ev->pid = id->nspid;
		if (ev->uid < 0)
			ev->uid = id->uid;
	}
}

/* The sender named (or not: the event says "?" then). */
static void
bypass_cb(void *arg, int rc, const char *why, struct px_identity *id)
{
	struct px_bypass *b = arg;
	struct moat_denial_event *ev = &b->ev;
	struct moat_proxy *p = b->p;

	(void)why;
	if (rc == 0)
		name_sender(p, id, ev);
	unlink_bypass(b);
	px_emit(p, ev);
	free(b);
	px_flush_check(p);
}

void
px_bypass_free_all(struct moat_proxy *p, struct px_sandbox *sb)
{
	struct px_bypass *b, *next;

	for (b = p->bypass; b != NULL; b = next) {
		next = b->next;
		if (sb != NULL && b->sb != sb)
			continue;
		px_work_cancel(b->job);
		unlink_bypass(b);
		free(b);
	}
}

/*
 * Name the sender of a rejected TCP SYN. true: a worker does, and
 * bypass_cb emits the event; false: emit ev now (named already, or
 * BYPASS_PENDING of the sandbox's wait, or no socket: no binary).
 */
static bool
identify(struct moat_proxy *p, struct px_sandbox *sb,
    const struct sockaddr *src, const struct sockaddr *dst,
    struct moat_denial_event *ev)
{
	struct px_identity now;
	struct px_bypass *b;
	char why[256];
	int r;

	if (sb->nbypass >= BYPASS_PENDING ||
	    (b = calloc(1, sizeof(*b))) == NULL)
		return false;
	b->p = p;
	b->sb = sb;
	b->ev = *ev;
	memset(&now, 0, sizeof(now));
	r = px_identity_start(sb, src, dst, true, NULL, 0, bypass_cb, b,
	    &b->job, &now, why, sizeof(why));
	if (r == PX_IDENT_NOW) {
		name_sender(p, &now, ev);
		px_identity_clear(&now);
	}
	if (r != 0) {
		free(b);
		return false;
	}
	b->next = p->bypass;
	p->bypass = b;
	sb->nbypass++;
	p->nbypass++;
	return true;
}

void
moat_proxy_bypass(struct moat_proxy *p, const char *sandbox,
    const struct moat_proxy_bypass_pkt *pkt)
{
	struct px_sandbox *sb = px_sandbox_find(p, sandbox);
	struct moat_denial_event ev;
	struct sockaddr_storage src, dst;
	char ip[64], pbuf[16];
	const char *proto;

	if (sb == NULL || (pkt->family != AF_INET && pkt->family != AF_INET6))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.ts_ms = moat_wall_ms();
	ev.uid = pkt->uid;
	to_sockaddr(pkt->family, &pkt->src, pkt->sport, &src);
	to_sockaddr(pkt->family, &pkt->dst, pkt->dport, &dst);
	px_addr_str((struct sockaddr *)&dst, ip, sizeof(ip));
	proto = proto_name(pkt->l4proto, pbuf, sizeof(pbuf));
	moat_strlcpy(ev.sandbox, sb->name, sizeof(ev.sandbox));
	moat_strlcpy(ev.stage, "bypass", sizeof(ev.stage));
	moat_strlcpy(ev.host, ip, sizeof(ev.host));
	moat_strlcpy(ev.ip, ip, sizeof(ev.ip));
	ev.port = pkt->dport;
	moat_strlcpy(ev.protocol, proto, sizeof(ev.protocol));
	snprintf(ev.reason, sizeof(ev.reason), "direct %s connection to "
	    "%s%s%s:%u bypassed the proxy; use HTTP_PROXY=http://%s:%u", proto,
	    pkt->family == AF_INET6 ? "[" : "", ip,
	    pkt->family == AF_INET6 ? "]" : "", (unsigned)pkt->dport,
	    sb->listen_str, (unsigned)px_addr_port((struct sockaddr *)
	    &sb->listen_ss));
	ev.policy_version = sb->version;
	if (pkt->l4proto == IPPROTO_TCP && identify(p, sb,
	    (struct sockaddr *)&src, (struct sockaddr *)&dst, &ev))
		return;
	px_emit(p, &ev);
}

static void
on_nflog_pkt(const struct moat_nflog_pkt *n, void *arg)
{
	struct px_sandbox *sb = arg;
	struct moat_proxy_bypass_pkt pkt;

	memset(&pkt, 0, sizeof(pkt));
	pkt.family = n->family;
	pkt.l4proto = n->l4proto;
	pkt.sport = n->sport;
	pkt.dport = n->dport;
	pkt.uid = n->uid;
	if ((n->family != AF_INET && n->family != AF_INET6) ||
	    inet_pton(n->family, n->src, &pkt.src) != 1 ||
	    inet_pton(n->family, n->dst, &pkt.dst) != 1)
		return;
	moat_proxy_bypass(sb->p, sb->name, &pkt);
}

void
px_bypass_read(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	char buf[65536] __attribute__((aligned(8)));
	ssize_t n;

	(void)l;
	(void)ev;
	/* Bounded: at most 64 datagrams per turn, then back to the loop. */
	for (int i = 0; i < 64; i++) {
		if ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) <= 0)
			break;
		moat_nflog_parse(buf, (size_t)n, on_nflog_pkt, arg);
	}
}
