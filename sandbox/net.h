/*
 * The sandbox's network: a network namespace "moat-NAME" (bind-mounted at
 * /run/netns/moat-NAME so `ip netns` lists it), a veth pair "mh-NAME"
 * (host side) / "ms-NAME" (sandbox side), a /30 from a pool, and two
 * nftables tables: `inet moat` inside the sandbox netns (only the proxy,
 * loopback and established traffic leave; the rest is logged to NFLOG and
 * rejected at once) and `inet moat-NAME` in the host netns (the sandbox
 * reaches the proxy port on its host address and nothing else).
 *
 * Everything is done through netlink (libmnl, libnftnl) from this
 * process; no tool is ever executed. See docs/network.md.
 */
#ifndef MOAT_SANDBOX_NET_H
#define MOAT_SANDBOX_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"
#include "common/nflog.h"

#define MOAT_NET_DEFAULT_POOL "10.200.0.0/16"
#define MOAT_NET_DEFAULT_PROXY_PORT 3128
#define MOAT_NET_DEFAULT_NFLOG_GROUP 7
#define MOAT_NET_NFLOG_PREFIX "moat-deny"

struct moat_net;

struct moat_net_config {
	/*
	 * Sandbox name ([A-Za-z0-9_.-], at most 64 chars): netns
	 * "moat-NAME"; veth names "mh-NAME"/"ms-NAME", or "mh-"/"ms-" plus
	 * a hash of NAME when those would not fit IFNAMSIZ.
	 */
	const char *name;
	/*
	 * Adopt this netns (e.g. open("/proc/<init pid>/ns/net")), or -1 to
	 * create one. The fd is duplicated; the caller keeps its own.
	 * An adopted netns is still bind-mounted at /run/netns/moat-NAME.
	 */
	int netns_fd;
	uint32_t index;     /* subnet slot in the pool: the index-th /30 */
	const char *pool;   /* NULL = MOAT_NET_DEFAULT_POOL; a /8../29 */
	uint16_t proxy_port;  /* 0 = 3128 */
	uint16_t nflog_group; /* 0 = 7 (group in the sandbox netns) */
};

/*
 * Build the whole network of one sandbox. On failure nothing is left
 * behind (no bind mount, veth or host table). Errors: MOAT_ERR_INVALID
 * (bad name, pool or index), MOAT_ERR_EXISTS (netns, veth or host table
 * of that name already there), MOAT_ERR_SYSTEM (a syscall or netlink
 * request failed; the cause names it).
 */
int moat_net_setup(const struct moat_net_config *c, struct moat_net **out,
    struct moat_cause *cause);

/*
 * Take over the network of a running sandbox (its init's netns in
 * c->netns_fd, which is duplicated): check that /run/netns/moat-NAME is
 * that netns and that the host end of the veth exists and is up, then
 * rebuild both nftables tables as moat_net_setup made them (one
 * transaction each, so nothing passes unfiltered meanwhile). *out then
 * owns the network like one moat_net_setup made. MOAT_ERR_NOTFOUND (a
 * part is missing or is another netns's), MOAT_ERR_INVALID (bad name,
 * pool or index), MOAT_ERR_SYSTEM.
 */
int moat_net_adopt(const struct moat_net_config *c, struct moat_net **out,
    struct moat_cause *cause);

/*
 * Tear down, fast (well under a millisecond): delete the host table
 * `inet moat-NAME`, set the host end of the veth down (nothing passes
 * any more), remove the /run/netns bind mount and close the netns fd.
 * The kernel deletes the veth pair with the netns once its last process
 * and socket are gone (deleting it here would cost 15-50 ms of RCU
 * waits); until then the host end stays down. A later moat_net_setup()
 * of the same name reclaims such a leftover, and moat_net_purge()
 * removes it at once. NULL is fine.
 */
void moat_net_free(struct moat_net *n);

/*
 * Drop this process's handle without touching the network (closes the
 * netns fd, frees memory): for a process that holds a copy, e.g. after
 * fork, while the owner keeps the sandbox. NULL is fine.
 */
void moat_net_release(struct moat_net *n);

/*
 * Remove whatever a sandbox network of this name left behind (after a
 * crash, or a netns that something still holds): host table, veth pair
 * (synchronously), bind mount. Nothing there is fine. 0 or MOAT_ERR_*.
 */
int moat_net_purge(const char *name, struct moat_cause *cause);

/* Dotted addresses of the host end ("10.200.0.1", where the proxy listens)
 * and the sandbox end ("10.200.0.2"). Owned by n. */
const char *moat_net_host_addr(const struct moat_net *n);
const char *moat_net_sandbox_addr(const struct moat_net *n);
/* Interface names of the host and sandbox ends. Owned by n. */
const char *moat_net_host_ifname(const struct moat_net *n);
const char *moat_net_sandbox_ifname(const struct moat_net *n);
uint16_t moat_net_proxy_port(const struct moat_net *n);
uint16_t moat_net_nflog_group(const struct moat_net *n);
/* The sandbox netns (O_CLOEXEC), owned by n: for setns() in a child. */
int moat_net_netns_fd(const struct moat_net *n);

/*
 * A socket created inside the sandbox netns (setns in, socket(), setns
 * back), SOCK_CLOEXEC added. Returns the fd (caller owns it) or a
 * negative MOAT_ERR_*.
 */
int moat_net_socket(const struct moat_net *n, int domain, int type,
    int proto, struct moat_cause *cause);

/*
 * An NFLOG netlink socket bound to the sandbox netns' group, non-blocking
 * and close-on-exec; *fd is the caller's. Copies 128 bytes of each packet.
 * MOAT_ERR_EXISTS when another socket already holds the group in that
 * netns (the bind ACK says EPERM).
 */
int moat_net_nflog_open(const struct moat_net *n, int *fd,
    struct moat_cause *cause);

/* Its packets are decoded by moat_nflog_parse (common/nflog.h). */

/*
 * Internal to sandbox/netns.c, rtnl.c, nft.c, nflog.c (not for other
 * modules). Netlink sockets are created inside the netns they configure
 * and then used from wherever the caller is.
 */
struct mnl_socket;
struct moat_net_addrs {
	uint32_t host;    /* network order */
	uint32_t sandbox; /* network order */
	uint8_t plen;     /* 30 */
};
struct moat_nft_params {
	const char *table;    /* "moat" (sandbox) or "moat-NAME" (host) */
	const char *veth;     /* host side: the iifname to match */
	uint32_t host_addr;   /* network order */
	uint16_t proxy_port;
	uint16_t nflog_group;
	int lo_index;         /* sandbox side: ifindex of lo */
	bool replace;         /* rebuild the table if it exists (adopt) */
};
/* Run fn inside netns_fd (setns there and back, on this thread). */
int moat_netns_run(int netns_fd, int (*fn)(void *, struct moat_cause *),
    void *arg, struct moat_cause *cause);
/* Open and bind a netlink socket (close-on-exec) in the current netns. */
int moat_nl_open(int bus, struct mnl_socket **out, struct moat_cause *cause);
/*
 * Send len bytes of netlink messages and wait for the reply of each one
 * flagged NLM_F_ACK; the first error wins (errno set, cause filled).
 */
int moat_nl_talk(struct mnl_socket *nl, const void *buf, size_t len,
    const char *what, struct moat_cause *cause);
int moat_rtnl_veth_create(struct mnl_socket *nl, const char *host_if,
    const char *sb_if, int netns_fd, struct moat_cause *cause);
int moat_rtnl_link_del(struct mnl_socket *nl, const char *ifname,
    struct moat_cause *cause);
int moat_rtnl_link_down(struct mnl_socket *nl, const char *ifname,
    struct moat_cause *cause);
/* Address + up on one end; with gw != 0 also a default route via gw. */
int moat_rtnl_conf(struct mnl_socket *nl, int ifindex, uint32_t addr,
    uint8_t plen, uint32_t gw, int lo_index, struct moat_cause *cause);
int moat_nft_sandbox_rules(struct mnl_socket *nl,
    const struct moat_nft_params *p, struct moat_cause *cause);
int moat_nft_host_rules(struct mnl_socket *nl,
    const struct moat_nft_params *p, struct moat_cause *cause);
int moat_nft_table_del(struct mnl_socket *nl, const char *table,
    struct moat_cause *cause);
int moat_nflog_bind(struct mnl_socket *nl, uint16_t group,
    struct moat_cause *cause);

#endif
