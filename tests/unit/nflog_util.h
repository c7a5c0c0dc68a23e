/*
 * Hand-made NFLOG messages (what the kernel sends an NFLOG socket), for
 * the parser's tests and the proxy's bypass monitor.
 */
#ifndef MOAT_TESTS_NFLOG_UTIL_H
#define MOAT_TESTS_NFLOG_UTIL_H

#include <sys/socket.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

static __attribute__((unused)) size_t
put_attr(uint8_t *p, uint16_t type, const void *v, uint16_t len)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + len),
		.nla_type = type };

	memcpy(p, &a, sizeof(a));
	memcpy(p + NLA_HDRLEN, v, len);
	memset(p + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	return NLA_HDRLEN + NLA_ALIGN(len);
}

static __attribute__((unused)) size_t
make_nflog(uint8_t *buf, const char *prefix, uint32_t uid,
    const uint8_t *pkt, uint16_t pktlen)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	struct nfgenmsg nfg = { .nfgen_family = AF_INET };
	uint32_t be = htonl(uid);
	size_t off = NLMSG_HDRLEN;

	memcpy(buf + off, &nfg, sizeof(nfg));
	off += NLMSG_ALIGN(sizeof(nfg));
	off += put_attr(buf + off, NFULA_PREFIX, prefix,
	    (uint16_t)(strlen(prefix) + 1));
	off += put_attr(buf + off, NFULA_UID, &be, 4);
	off += put_attr(buf + off, NFULA_GID, &be, 4);
	off += put_attr(buf + off, NFULA_PAYLOAD, pkt, pktlen);
	nlh->nlmsg_len = (uint32_t)off;
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nlh->nlmsg_flags = 0;
	nlh->nlmsg_seq = 0;
	nlh->nlmsg_pid = 0;
	return off;
}

#endif
