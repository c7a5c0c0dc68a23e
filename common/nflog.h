/*
 * NFLOG packets: the decoder for what a sandbox's NFLOG socket receives
 * (the sandbox ruleset logs every packet it rejects; sandbox/net.h opens
 * and binds the socket). Used by the proxy, which turns them into
 * "bypass" denials, and by tests.
 */
#ifndef MOAT_COMMON_NFLOG_H
#define MOAT_COMMON_NFLOG_H

#include <stddef.h>
#include <stdint.h>

/* One logged packet, as moat_nflog_parse() decodes it. */
struct moat_nflog_pkt {
	int family;      /* AF_INET, AF_INET6, or 0 when unknown */
	int l4proto;     /* IPPROTO_TCP, IPPROTO_UDP, ... or -1 */
	char src[46];    /* dotted or IPv6 text, "" when unknown */
	char dst[46];
	uint16_t sport;  /* host order; 0 when not TCP/UDP */
	uint16_t dport;
	int uid;         /* of the sending socket, -1 unknown */
	int gid;         /* -1 unknown */
	char prefix[64]; /* log prefix, e.g. "moat-deny" */
};

/*
 * Parse one recv() buffer of NFLOG netlink messages; calls cb once per
 * logged packet. Returns the number of packets, or MOAT_ERR_INVALID for a
 * malformed buffer (packets before the bad message were still delivered).
 * Never trusts lengths in the buffer: safe on untrusted input.
 */
int moat_nflog_parse(const void *buf, size_t len,
    void (*cb)(const struct moat_nflog_pkt *, void *), void *arg);

#endif
