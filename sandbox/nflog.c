/*
 * NFLOG (nfnetlink_log): binding a group on a socket (the packets it
 * then receives are decoded by common/nflog.c).
 *
 * nfnetlink_log is per network namespace: the socket must be created in
 * the sandbox netns (moat_net_nflog_open in netns.c does that) and can then
 * be read from anywhere. A group is exclusive per netns; a second BIND gets
 * EPERM in the config ACK.
 */
#include <sys/socket.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>

#include "common/util.h"
#include "sandbox/net.h"

#define NFLOG_COPY_RANGE 128 /* IP + TCP/UDP headers with options */

int
moat_nflog_bind(struct mnl_socket *nl, uint16_t group,
    struct moat_cause *cause)
{
	char buf[256] __attribute__((aligned(4)));
	struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode = {
		.copy_range = htonl(NFLOG_COPY_RANGE),
		.copy_mode = NFULNL_COPY_PACKET,
	};
	/* Deliver each packet at once, not batched for up to a second. */
	uint32_t qthresh = htonl(1);
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	int r;

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = 1;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(group);
	/* The kernel applies the command first, then the mode. */
	mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof(cmd), &cmd);
	mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof(mode), &mode);
	mnl_attr_put(nlh, NFULA_CFG_QTHRESH, sizeof(qthresh), &qthresh);
	r = moat_nl_talk(nl, buf, nlh->nlmsg_len, "nflog bind", cause);
	if (r != 0 && errno == EPERM) {
		moat_cause_set(cause, "nflog group %u is already bound in "
		    "this netns", group);
		return MOAT_ERR_EXISTS;
	}
	return r;
}
