/*
 * nftables rules of the sandbox network, built with libnftnl and sent as
 * one transaction (NFNL_MSG_BATCH_BEGIN .. END) per table, so a base
 * chain with policy drop never exists without its accept rules.
 *
 * The rule sets are data (rule_spec tables below); docs/network.md shows
 * them as nft text.
 */
#include <sys/socket.h>

/* libc's <netinet/in.h> first: it keeps <linux/in.h> from redefining it. */
#include <netinet/in.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "common/log.h"
#include "common/util.h"
#include "sandbox/net.h"

#define NFT_BATCH_SZ (64 * 1024)
#define NFT_MSG_MAX 4096 /* generous bound for one message of ours */

/* Match steps of a rule, in order. */
enum nft_match {
	M_END = 0,
	M_OIF_LO,    /* oif lo */
	M_IIF_LO,    /* iif lo */
	M_IIFNAME,   /* iifname VETH */
	M_OIFNAME,   /* oifname VETH */
	M_CT_ESTREL, /* ct state established,related */
	M_IP_DADDR,  /* ip daddr HOST */
	M_TCP_DPORT, /* tcp dport PROXY */
	M_L4_TCP,    /* meta l4proto tcp */
	M_LIMIT,     /* limit rate 20/second burst 50 packets */
	M_LOG,       /* log prefix "moat-deny" group GROUP */
};

enum nft_verdict {
	V_NONE = 0,
	V_ACCEPT,
	V_DROP,
	V_REJECT_RST,   /* reject with tcp reset */
	V_REJECT_ICMPX, /* reject with icmpx admin-prohibited */
};

struct rule_spec {
	uint8_t match[4];
	uint8_t verdict;
};

/* Sandbox netns, `table inet moat`, chain output (policy drop). */
static const struct rule_spec sandbox_output[] = {
	{ { M_OIF_LO }, V_ACCEPT },
	{ { M_CT_ESTREL }, V_ACCEPT },
	{ { M_IP_DADDR, M_TCP_DPORT }, V_ACCEPT },
	/* Over the limit the rule just ends; the reject below still runs. */
	{ { M_LIMIT, M_LOG }, V_NONE },
	/* Reject, not drop: a drop makes clients hang until their timeout. */
	{ { M_L4_TCP }, V_REJECT_RST },
	{ { M_END }, V_REJECT_ICMPX },
};

/*
 * Sandbox netns, chain input (policy drop): nothing connects into a
 * sandbox from outside; only loopback and replies to its own connections
 * arrive. (SSH forwards are dialled from a socket made inside, over lo.)
 * Defence in depth behind the proxy, which refuses the sandbox pool.
 */
static const struct rule_spec sandbox_input[] = {
	{ { M_IIF_LO }, V_ACCEPT },
	{ { M_CT_ESTREL }, V_ACCEPT },
	{ { M_L4_TCP }, V_REJECT_RST },
	{ { M_END }, V_REJECT_ICMPX },
};

/* Host netns, `table inet moat-NAME`, chain input (policy accept). */
static const struct rule_spec host_input[] = {
	{ { M_IIFNAME, M_CT_ESTREL }, V_ACCEPT },
	{ { M_IIFNAME, M_IP_DADDR, M_TCP_DPORT }, V_ACCEPT },
	{ { M_IIFNAME, M_L4_TCP }, V_REJECT_RST },
	{ { M_IIFNAME }, V_REJECT_ICMPX },
};

/* Host netns, chain forward (policy accept): nothing crosses the host. */
static const struct rule_spec host_forward[] = {
	{ { M_IIFNAME }, V_DROP },
	{ { M_OIFNAME }, V_DROP },
};

struct nft_batch {
	char *buf;
	size_t off;
	uint32_t seq;
	int oom;
};

static struct nlmsghdr *
batch_room(struct nft_batch *b)
{
	if (b->off + NFT_MSG_MAX > NFT_BATCH_SZ) {
		b->oom = 1;
		return NULL;
	}
	return (struct nlmsghdr *)(b->buf + b->off);
}

static void
batch_done(struct nft_batch *b, struct nlmsghdr *nlh)
{
	b->off += MNL_ALIGN(nlh->nlmsg_len);
}

static void
add_expr(struct nft_batch *b, struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (e == NULL)
		b->oom = 1;
	else
		nftnl_rule_add_expr(r, e);
}

static struct nftnl_expr *
expr_meta(uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return e;
}

static struct nftnl_expr *
expr_cmp(uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
	return e;
}

static struct nftnl_expr *
expr_payload(uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	}
	return e;
}

/* meta KEY == v (an 8-bit key such as nfproto or l4proto). */
static void
match_meta_u8(struct nft_batch *b, struct nftnl_rule *r, uint32_t key,
    uint8_t v)
{
	add_expr(b, r, expr_meta(key));
	add_expr(b, r, expr_cmp(NFT_CMP_EQ, &v, sizeof(v)));
}

static void
match_ifname(struct nft_batch *b, struct nftnl_rule *r, uint32_t key,
    const char *name)
{
	char pad[IFNAMSIZ] = { 0 };

	/* Whole IFNAMSIZ compare: an exact name, not a prefix. */
	strncpy(pad, name, sizeof(pad) - 1);
	add_expr(b, r, expr_meta(key));
	add_expr(b, r, expr_cmp(NFT_CMP_EQ, pad, sizeof(pad)));
}

static void
match_ct_estrel(struct nft_batch *b, struct nftnl_rule *r)
{
	uint32_t mask = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) |
	    NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0;
	struct nftnl_expr *e;

	if ((e = nftnl_expr_alloc("ct")) != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	add_expr(b, r, e);
	if ((e = nftnl_expr_alloc("bitwise")) != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask,
		    sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
	}
	add_expr(b, r, e);
	add_expr(b, r, expr_cmp(NFT_CMP_NEQ, &zero, sizeof(zero)));
}

static void
add_match(struct nft_batch *b, struct nftnl_rule *r, enum nft_match m,
    const struct moat_nft_params *p)
{
	struct nftnl_expr *e = NULL;
	uint32_t u32;
	uint16_t port;

	switch (m) {
	case M_END:
		break;
	case M_OIF_LO:
		u32 = (uint32_t)p->lo_index;
		add_expr(b, r, expr_meta(NFT_META_OIF));
		add_expr(b, r, expr_cmp(NFT_CMP_EQ, &u32, sizeof(u32)));
		break;
	case M_IIF_LO:
		u32 = (uint32_t)p->lo_index;
		add_expr(b, r, expr_meta(NFT_META_IIF));
		add_expr(b, r, expr_cmp(NFT_CMP_EQ, &u32, sizeof(u32)));
		break;
	case M_IIFNAME:
		match_ifname(b, r, NFT_META_IIFNAME, p->veth);
		break;
	case M_OIFNAME:
		match_ifname(b, r, NFT_META_OIFNAME, p->veth);
		break;
	case M_CT_ESTREL:
		match_ct_estrel(b, r);
		break;
	case M_IP_DADDR:
		match_meta_u8(b, r, NFT_META_NFPROTO, NFPROTO_IPV4);
		add_expr(b, r, expr_payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4));
		add_expr(b, r, expr_cmp(NFT_CMP_EQ, &p->host_addr, 4));
		break;
	case M_TCP_DPORT:
		port = htons(p->proxy_port);
		match_meta_u8(b, r, NFT_META_L4PROTO, IPPROTO_TCP);
		add_expr(b, r, expr_payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2,
		    2));
		add_expr(b, r, expr_cmp(NFT_CMP_EQ, &port, sizeof(port)));
		break;
	case M_L4_TCP:
		match_meta_u8(b, r, NFT_META_L4PROTO, IPPROTO_TCP);
		break;
	case M_LIMIT:
		if ((e = nftnl_expr_alloc("limit")) != NULL) {
			nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, 20);
			nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, 50);
			nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE,
			    NFT_LIMIT_PKTS);
			nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, 0);
		}
		add_expr(b, r, e);
		break;
	case M_LOG:
		if ((e = nftnl_expr_alloc("log")) != NULL) {
			nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP,
			    p->nflog_group);
			nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX,
			    MOAT_NET_NFLOG_PREFIX);
		}
		add_expr(b, r, e);
		break;
	}
}

static void
add_verdict(struct nft_batch *b, struct nftnl_rule *r, enum nft_verdict v)
{
	struct nftnl_expr *e = NULL;

	switch (v) {
	case V_NONE:
		return;
	case V_ACCEPT:
	case V_DROP:
		if ((e = nftnl_expr_alloc("immediate")) != NULL) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG,
			    NFT_REG_VERDICT);
			nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT,
			    v == V_ACCEPT ? NF_ACCEPT : NF_DROP);
		}
		break;
	case V_REJECT_RST:
	case V_REJECT_ICMPX:
		if ((e = nftnl_expr_alloc("reject")) != NULL) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE,
			    v == V_REJECT_RST ? NFT_REJECT_TCP_RST :
			    NFT_REJECT_ICMPX_UNREACH);
			nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
			    v == V_REJECT_RST ? 0 :
			    NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
		}
		break;
	}
	add_expr(b, r, e);
}

static void
batch_table(struct nft_batch *b, uint16_t type, const char *name,
    uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (t == NULL || (nlh = batch_room(b)) == NULL) {
		b->oom = 1;
		if (t != NULL)
			nftnl_table_free(t);
		return;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = nftnl_nlmsg_build_hdr((char *)nlh, type, NFPROTO_INET,
	    flags | NLM_F_ACK, b->seq++);
	nftnl_table_nlmsg_build_payload(nlh, t);
	batch_done(b, nlh);
	nftnl_table_free(t);
}

static void
batch_chain(struct nft_batch *b, const char *table, const char *name,
    uint32_t hook, uint32_t policy)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (c == NULL || (nlh = batch_room(b)) == NULL) {
		b->oom = 1;
		if (c != NULL)
			nftnl_chain_free(c);
		return;
	}
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, policy);
	nlh = nftnl_nlmsg_build_hdr((char *)nlh, NFT_MSG_NEWCHAIN,
	    NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, b->seq++);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	batch_done(b, nlh);
	nftnl_chain_free(c);
}

static void
batch_rules(struct nft_batch *b, const char *chain,
    const struct rule_spec *rs, size_t n, const struct moat_nft_params *p)
{
	struct nftnl_rule *r = NULL;
	struct nlmsghdr *nlh;
	size_t i, j;

	for (i = 0; i < n && !b->oom; i++) {
		if ((r = nftnl_rule_alloc()) == NULL ||
		    (nlh = batch_room(b)) == NULL) {
			b->oom = 1;
			break;
		}
		nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, p->table);
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
		for (j = 0; j < MOAT_NELEM(rs[i].match); j++)
			add_match(b, r, rs[i].match[j], p);
		add_verdict(b, r, rs[i].verdict);
		nlh = nftnl_nlmsg_build_hdr((char *)nlh, NFT_MSG_NEWRULE,
		    NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
		    b->seq++);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		batch_done(b, nlh);
		nftnl_rule_free(r);
		r = NULL;
	}
	/* libnftnl's free functions do not take NULL. */
	if (r != NULL)
		nftnl_rule_free(r);
}

/*
 * p->replace: the table is built anew whether or not it exists, in the
 * same transaction (add it if missing, delete it, then what follows):
 * nothing passes unfiltered in between.
 */
static void
batch_replace(struct nft_batch *b, const struct moat_nft_params *p)
{
	if (!p->replace)
		return;
	batch_table(b, NFT_MSG_NEWTABLE, p->table, NLM_F_CREATE);
	batch_table(b, NFT_MSG_DELTABLE, p->table, 0);
}

static int
batch_open(struct nft_batch *b, struct moat_cause *cause)
{
	struct nlmsghdr *nlh;

	memset(b, 0, sizeof(*b));
	if ((b->buf = calloc(1, NFT_BATCH_SZ)) == NULL) {
		moat_cause_set(cause, "nft batch: out of memory");
		return MOAT_ERR_NOMEM;
	}
	b->seq = 1;
	nlh = nftnl_batch_begin(b->buf, b->seq++);
	batch_done(b, nlh);
	return MOAT_OK;
}

static int
batch_send(struct nft_batch *b, struct mnl_socket *nl, const char *what,
    struct moat_cause *cause)
{
	struct nlmsghdr *nlh;
	int r;

	if (!b->oom && (nlh = batch_room(b)) != NULL) {
		nlh = nftnl_batch_end((char *)nlh, b->seq++);
		batch_done(b, nlh);
	}
	if (b->oom) {
		moat_cause_set(cause, "%s: out of memory", what);
		r = MOAT_ERR_NOMEM;
	} else
		r = moat_nl_talk(nl, b->buf, b->off, what, cause);
	free(b->buf);
	b->buf = NULL;
	return r;
}

int
moat_nft_sandbox_rules(struct mnl_socket *nl,
    const struct moat_nft_params *p, struct moat_cause *cause)
{
	struct nft_batch b;
	int r;

	if ((r = batch_open(&b, cause)) != 0)
		return r;
	batch_replace(&b, p);
	batch_table(&b, NFT_MSG_NEWTABLE, p->table,
	    NLM_F_CREATE | NLM_F_EXCL);
	batch_chain(&b, p->table, "output", NF_INET_LOCAL_OUT, NF_DROP);
	batch_rules(&b, "output", sandbox_output,
	    MOAT_NELEM(sandbox_output), p);
	batch_chain(&b, p->table, "input", NF_INET_LOCAL_IN, NF_DROP);
	batch_rules(&b, "input", sandbox_input, MOAT_NELEM(sandbox_input), p);
	return batch_send(&b, nl, "nft: sandbox table inet moat", cause);
}

int
moat_nft_host_rules(struct mnl_socket *nl, const struct moat_nft_params *p,
    struct moat_cause *cause)
{
	struct nft_batch b;
	int r;

	if ((r = batch_open(&b, cause)) != 0)
		return r;
	batch_replace(&b, p);
	batch_table(&b, NFT_MSG_NEWTABLE, p->table,
	    NLM_F_CREATE | NLM_F_EXCL);
	batch_chain(&b, p->table, "input", NF_INET_LOCAL_IN, NF_ACCEPT);
	batch_chain(&b, p->table, "forward", NF_INET_FORWARD, NF_ACCEPT);
	batch_rules(&b, "input", host_input, MOAT_NELEM(host_input), p);
	batch_rules(&b, "forward", host_forward, MOAT_NELEM(host_forward),
	    p);
	return batch_send(&b, nl, "nft: host table", cause);
}

int
moat_nft_table_del(struct mnl_socket *nl, const char *table,
    struct moat_cause *cause)
{
	struct nft_batch b;
	int r;

	if ((r = batch_open(&b, cause)) != 0)
		return r;
	batch_table(&b, NFT_MSG_DELTABLE, table, 0);
	r = batch_send(&b, nl, "nft: delete table", cause);
	if (r != 0 && errno == ENOENT)
		r = MOAT_ERR_NOTFOUND;
	return r;
}
