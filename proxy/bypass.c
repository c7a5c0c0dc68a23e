/*
 * Bypass events: a packet the sandbox ruleset rejected (moatd reads the
 * NFLOG socket and parses it) becomes a denial with stage "bypass". For
 * TCP the sending socket usually still exists (its SYN was just
 * refused), so the same identity code names the binary; its hash comes
 * from the TOFU cache only, never from new work.
 */
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "proxy/internal.h"

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

static void
fill_identity(struct moat_proxy *p, struct px_sandbox *sb,
    const struct sockaddr *src, const struct sockaddr *dst,
    struct moat_denial_event *ev)
{
	struct px_identity id;
	char why[256];

	memset(&id, 0, sizeof(id));
	if (px_identity_lookup(sb, src, dst, &id, why, sizeof(why)) != 0)
		return;
	moat_denial_event_set(ev, MOAT_EVF_BINARY, id.bin[0].path);
	if (id.bin[0].have_st)
		px_hasher_cached(p->hasher, &id.bin[0].st, ev->sha256);
	for (size_t i = 1; i < id.nbin; i++)
		moat_denial_event_set(ev, MOAT_EVF_ANCESTORS, id.bin[i].path);
	ev->pid = id.nspid;
	if (ev->uid < 0)
		ev->uid = id.uid;
	px_identity_clear(&id);
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
	if (pkt->l4proto == IPPROTO_TCP)
		fill_identity(p, sb, (struct sockaddr *)&src,
		    (struct sockaddr *)&dst, &ev);
	px_emit(p, &ev);
}
