/*
 * Decoding the packets NFLOG (nfnetlink_log) delivers: the parse half of
 * sandbox/nflog.c, shared so that the proxy, which reads each sandbox's
 * NFLOG socket, can decode them without the sandbox module. The packets
 * come from the sandbox: nothing in them is trusted.
 */
#include <sys/socket.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>

#include "common/errors.h"
#include "common/nflog.h"

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Addresses, protocol and ports from the logged IP packet (untrusted). */
static void
parse_ip(const uint8_t *p, size_t n, struct moat_nflog_pkt *pkt)
{
	const uint8_t *l4 = NULL;
	size_t ihl;

	if (n < 1)
		return;
	if (p[0] >> 4 == 4 && n >= 20) {
		ihl = (size_t)(p[0] & 0x0f) * 4;
		if (ihl < 20 || ihl > n)
			return;
		pkt->family = AF_INET;
		pkt->l4proto = p[9];
		inet_ntop(AF_INET, p + 12, pkt->src, sizeof(pkt->src));
		inet_ntop(AF_INET, p + 16, pkt->dst, sizeof(pkt->dst));
		/* Only a first fragment carries the ports. */
		if ((get16(p + 6) & 0x1fff) == 0 && n >= ihl + 4)
			l4 = p + ihl;
	} else if (p[0] >> 4 == 6 && n >= 40) {
		pkt->family = AF_INET6;
		pkt->l4proto = p[6];
		inet_ntop(AF_INET6, p + 8, pkt->src, sizeof(pkt->src));
		inet_ntop(AF_INET6, p + 24, pkt->dst, sizeof(pkt->dst));
		/* XXX extension headers are not walked; ports stay 0. */
		if (n >= 44)
			l4 = p + 40;
	} else
		return;
	if (l4 != NULL && (pkt->l4proto == IPPROTO_TCP ||
	    pkt->l4proto == IPPROTO_UDP || pkt->l4proto == IPPROTO_UDPLITE ||
	    pkt->l4proto == IPPROTO_SCTP)) {
		pkt->sport = get16(l4);
		pkt->dport = get16(l4 + 2);
	}
}

static int
parse_attr(const struct nlattr *a, struct moat_nflog_pkt *pkt)
{
	const uint8_t *v = mnl_attr_get_payload(a);
	size_t n = mnl_attr_get_payload_len(a);
	uint32_t u32;

	switch (mnl_attr_get_type(a)) {
	case NFULA_PREFIX:
		n = strnlen((const char *)v, n);
		if (n >= sizeof(pkt->prefix))
			n = sizeof(pkt->prefix) - 1;
		memcpy(pkt->prefix, v, n);
		pkt->prefix[n] = '\0';
		break;
	case NFULA_UID:
	case NFULA_GID:
		if (n < sizeof(u32))
			return MOAT_ERR_INVALID;
		memcpy(&u32, v, sizeof(u32));
		u32 = ntohl(u32);
		if (u32 > INT32_MAX)
			break;
		if (mnl_attr_get_type(a) == NFULA_UID)
			pkt->uid = (int)u32;
		else
			pkt->gid = (int)u32;
		break;
	case NFULA_PAYLOAD:
		parse_ip(v, n, pkt);
		break;
	}
	return MOAT_OK;
}

/*
 * mnl_nlmsg_ok() casts nlmsg_len to int: a huge length passes it. And
 * libmnl walks attributes up to the ALIGNED end of a message, so the
 * aligned length must fit too (the kernel always pads; found by
 * fuzz_nflog).
 */
static bool
msg_ok(const struct nlmsghdr *nlh, int left)
{
	return left >= (int)sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) &&
	    nlh->nlmsg_len <= (uint32_t)left &&
	    MNL_ALIGN(nlh->nlmsg_len) <= (uint32_t)left;
}

static int
parse_msgs(const void *buf, size_t len,
    void (*cb)(const struct moat_nflog_pkt *, void *), void *arg)
{
	const struct nlmsghdr *nlh = buf;
	const struct nfgenmsg *nfg;
	const struct nlattr *a;
	int left = len > INT32_MAX ? INT32_MAX : (int)len;
	int count = 0;

	for (; msg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
		struct moat_nflog_pkt pkt;

		if (nlh->nlmsg_type !=
		    ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET))
			continue;
		if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*nfg))
			return MOAT_ERR_INVALID;
		memset(&pkt, 0, sizeof(pkt));
		pkt.l4proto = -1;
		pkt.uid = -1;
		pkt.gid = -1;
		nfg = mnl_nlmsg_get_payload(nlh);
		mnl_attr_for_each(a, nlh, sizeof(*nfg)) {
			if (parse_attr(a, &pkt) != 0)
				return MOAT_ERR_INVALID;
		}
		if (pkt.family == 0 && (nfg->nfgen_family == AF_INET ||
		    nfg->nfgen_family == AF_INET6))
			pkt.family = nfg->nfgen_family;
		cb(&pkt, arg);
		count++;
	}
	/* Leftover bytes that are not a whole message: a cut buffer. */
	if (left >= (int)sizeof(struct nlmsghdr))
		return MOAT_ERR_INVALID;
	return count;
}

int
moat_nflog_parse(const void *buf, size_t len,
    void (*cb)(const struct moat_nflog_pkt *, void *), void *arg)
{
	void *copy = NULL;
	int r;

	if (buf == NULL || cb == NULL)
		return MOAT_ERR_INVALID;
	/* Netlink headers are read in place: they need 4-byte alignment. */
	if (((uintptr_t)buf & 3) != 0) {
		if ((copy = malloc(len ? len : 1)) == NULL)
			return MOAT_ERR_NOMEM;
		memcpy(copy, buf, len);
		buf = copy;
	}
	r = parse_msgs(buf, len, cb, arg);
	free(copy);
	return r;
}
