/*
 * rtnetlink for the sandbox network (libmnl): the veth pair, addresses,
 * links up, the default route; and the netlink request/ACK helper that
 * nft.c and nflog.c share.
 *
 * Every request carries NLM_F_ACK and is checked. The kernel handles
 * rtnetlink and nfnetlink requests in the sender's context, so all the
 * replies are queued by the time sendto() returns; a receive timeout
 * only guards against a kernel that does not answer.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>

#include "common/log.h"
#include "common/util.h"
#include "sandbox/net.h"

#define RTNL_BUFSZ 2048

int
moat_nl_open(int bus, struct mnl_socket **out, struct moat_cause *cause)
{
	struct timeval tv = { .tv_sec = 2 };
	struct mnl_socket *nl = NULL;
	int one = 1;

	if ((nl = mnl_socket_open2(bus, SOCK_CLOEXEC)) == NULL) {
		moat_cause_errno(cause, "netlink socket (bus %d)", bus);
		return MOAT_ERR_SYSTEM;
	}
	/* Short error replies with the kernel's explanation attached. */
	(void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)) == -1 ||
	    mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == -1) {
		moat_cause_errno(cause, "netlink socket (bus %d) setup", bus);
		mnl_socket_close(nl);
		return MOAT_ERR_SYSTEM;
	}
	*out = nl;
	return MOAT_OK;
}

/* The kernel's extended-ACK text of an error reply, or "". */
static const char *
nl_ext_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	size_t off;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return "";
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	if (mnl_nlmsg_get_payload_len(nlh) < off)
		return "";
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(a);
	}
	return "";
}

static size_t
nl_count_acks(const void *buf, size_t len)
{
	const struct nlmsghdr *nlh = buf;
	int left = (int)len;
	size_t n = 0;

	while (mnl_nlmsg_ok(nlh, left)) {
		if (nlh->nlmsg_flags & NLM_F_ACK)
			n++;
		nlh = mnl_nlmsg_next(nlh, &left);
	}
	return n;
}

int
moat_nl_talk(struct mnl_socket *nl, const void *buf, size_t len,
    const char *what, struct moat_cause *cause)
{
	char rbuf[8192] __attribute__((aligned(4)));
	size_t want = nl_count_acks(buf, len), got = 0;
	int first = 0;
	ssize_t n;

	if (mnl_socket_sendto(nl, buf, len) < 0) {
		moat_cause_errno(cause, "%s: netlink send", what);
		return MOAT_ERR_SYSTEM;
	}
	while (got < want) {
		const struct nlmsghdr *nlh;
		int left;

		n = recv(mnl_socket_get_fd(nl), rbuf, sizeof(rbuf),
		    first ? MSG_DONTWAIT : 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (first)
				break;
			moat_cause_errno(cause, "%s: netlink reply", what);
			return MOAT_ERR_SYSTEM;
		}
		nlh = (const struct nlmsghdr *)rbuf;
		left = (int)n;
		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh,
		    &left)) {
			const struct nlmsgerr *e;

			if (nlh->nlmsg_type != NLMSG_ERROR ||
			    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
				continue;
			got++;
			e = mnl_nlmsg_get_payload(nlh);
			if (e->error != 0 && first == 0) {
				const char *x = nl_ext_msg(nlh);

				first = -e->error;
				moat_cause_set(cause, "%s: %s%s%s%s", what,
				    strerror(first), *x ? " (" : "", x,
				    *x ? ")" : "");
			}
		}
	}
	if (first != 0) {
		errno = first;
		return first == EEXIST ? MOAT_ERR_EXISTS : MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

static struct nlmsghdr *
rtnl_put(char *buf, size_t *off, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + *off);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	return nlh;
}

/* Room left after the messages so far (MNL_ALIGNed offsets). */
#define RTNL_DONE(nlh, off) ((off) += (nlh)->nlmsg_len)

int
moat_rtnl_veth_create(struct mnl_socket *nl, const char *host_if,
    const char *sb_if, int netns_fd, struct moat_cause *cause)
{
	char buf[RTNL_BUFSZ] __attribute__((aligned(4)));
	struct nlattr *info, *data, *peer;
	struct ifinfomsg *ifm;
	struct nlmsghdr *nlh;
	size_t off = 0;

	memset(buf, 0, sizeof(buf));
	nlh = rtnl_put(buf, &off, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host_if);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* The peer nest starts with its own (zeroed) ifinfomsg. */
	nlh->nlmsg_len += MNL_ALIGN(sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, sb_if);
	/* Born inside the sandbox netns: it never exists on the host. */
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	RTNL_DONE(nlh, off);
	return moat_nl_talk(nl, buf, off, "create veth pair", cause);
}

/* One RTM_*LINK request on ifname; ENODEV reads as MOAT_ERR_NOTFOUND. */
static int
link_by_name(struct mnl_socket *nl, const char *ifname, uint16_t type,
    unsigned int change, const char *what, struct moat_cause *cause)
{
	char buf[RTNL_BUFSZ] __attribute__((aligned(4)));
	struct ifinfomsg *ifm;
	struct nlmsghdr *nlh;
	size_t off = 0;

	memset(buf, 0, sizeof(buf));
	nlh = rtnl_put(buf, &off, type, 0);
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_change = change;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	RTNL_DONE(nlh, off);
	if (moat_nl_talk(nl, buf, off, what, cause) != 0)
		return errno == ENODEV ? MOAT_ERR_NOTFOUND : MOAT_ERR_SYSTEM;
	return MOAT_OK;
}

int
moat_rtnl_link_del(struct mnl_socket *nl, const char *ifname,
    struct moat_cause *cause)
{
	return link_by_name(nl, ifname, RTM_DELLINK, 0, "delete link", cause);
}

/* ifi_change UP with ifi_flags 0: clear IFF_UP, leave the rest. */
int
moat_rtnl_link_down(struct mnl_socket *nl, const char *ifname,
    struct moat_cause *cause)
{
	return link_by_name(nl, ifname, RTM_NEWLINK, IFF_UP, "set link down",
	    cause);
}

static void
rtnl_put_up(char *buf, size_t *off, int ifindex)
{
	struct nlmsghdr *nlh = rtnl_put(buf, off, RTM_NEWLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));

	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	RTNL_DONE(nlh, *off);
}

int
moat_rtnl_conf(struct mnl_socket *nl, int ifindex, uint32_t addr,
    uint8_t plen, uint32_t gw, int lo_index, struct moat_cause *cause)
{
	char buf[RTNL_BUFSZ] __attribute__((aligned(4)));
	struct ifaddrmsg *ifa;
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	size_t off = 0;

	memset(buf, 0, sizeof(buf));
	if (lo_index > 0)
		rtnl_put_up(buf, &off, lo_index);

	nlh = rtnl_put(buf, &off, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = plen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)ifindex;
	mnl_attr_put_u32(nlh, IFA_LOCAL, addr);
	mnl_attr_put_u32(nlh, IFA_ADDRESS, addr);
	RTNL_DONE(nlh, off);

	rtnl_put_up(buf, &off, ifindex);

	if (gw != 0) {
		nlh = rtnl_put(buf, &off, RTM_NEWROUTE,
		    NLM_F_CREATE | NLM_F_EXCL);
		rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
		rtm->rtm_family = AF_INET;
		rtm->rtm_dst_len = 0;
		rtm->rtm_table = RT_TABLE_MAIN;
		rtm->rtm_protocol = RTPROT_BOOT;
		rtm->rtm_scope = RT_SCOPE_UNIVERSE;
		rtm->rtm_type = RTN_UNICAST;
		mnl_attr_put_u32(nlh, RTA_GATEWAY, gw);
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
		RTNL_DONE(nlh, off);
	}
	return moat_nl_talk(nl, buf, off, "configure link", cause);
}
