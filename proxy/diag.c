/*
 * The client's socket, as the sandbox's network namespace knows it: an
 * exact SOCK_DIAG_BY_FAMILY lookup of the connection's 4-tuple on a
 * NETLINK_SOCK_DIAG socket created inside that netns, or (without one)
 * a read of /proc/<init>/net/tcp{,6}.
 *
 * The kernel's exact lookup falls back to a listener when no connected
 * socket matches (a client bound to a device with SO_BINDTODEVICE
 * misses it): the reply is used only when it names exactly the tuple
 * asked for and is in a state the caller accepts, never a listener.
 */
#include <sys/socket.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

int
px_diag_open(int netns_fd, struct moat_cause *cause)
{
	int self = -1, fd = -1;

	if (netns_fd >= 0) {
		self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self == -1 || setns(netns_fd, CLONE_NEWNET) == -1) {
			moat_cause_errno(cause, "enter the sandbox netns");
			moat_close(self);
			return -1;
		}
	}
	/* A netlink socket stays in the netns it was created in. */
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd == -1)
		moat_cause_errno(cause, "socket(NETLINK_SOCK_DIAG)");
	if (self >= 0) {
		if (setns(self, CLONE_NEWNET) == -1)
			log_fatal("cannot return to the proxy's netns");
		close(self);
	}
	return fd;
}

/* The address and port of sa as the diag id stores them (network order). */
static void
id_half(const struct sockaddr *sa, __be32 addr[4], __be16 *port)
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		*port = s->sin_port;
		memcpy(addr, &s->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *s = (const void *)sa;
		*port = s->sin6_port;
		memcpy(addr, &s->sin6_addr, 16);
	}
}

/* An IPv4 address in the first word becomes ::ffff:a.b.c.d. */
static void
map4(__be32 addr[4])
{
	addr[3] = addr[0];
	addr[0] = addr[1] = 0;
	addr[2] = htonl(0xffff);
}

static const char *
state_name(unsigned st)
{
	static const char *const names[] = { "?", "ESTABLISHED", "SYN_SENT",
		"SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
		"CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING" };

	return st < MOAT_NELEM(names) ? names[st] : "?";
}

int
px_diag_find(int fd, const struct sockaddr *src, const struct sockaddr *dst,
    unsigned states, struct px_sock *out, char *why, size_t whylen)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	union {
		struct nlmsghdr nlh;
		char buf[8192];
	} resp;
	const struct inet_diag_msg *m;
	size_t alen = src->sa_family == AF_INET ? 4 : 16;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (uint8_t)src->sa_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0U;
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	id_half(src, req.r.id.idiag_src, &req.r.id.idiag_sport);
	id_half(dst, req.r.id.idiag_dst, &req.r.id.idiag_dport);
	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req)) {
		snprintf(why, whylen, "sock_diag request failed: %s",
		    strerror(errno));
		return MOAT_ERR_NOTFOUND;
	}
	do
		n = recv(fd, &resp, sizeof(resp), 0);
	while (n == -1 && errno == EINTR);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(*m)) ||
	    resp.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    resp.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*m))) {
		snprintf(why, whylen, "no socket found for the connection");
		return MOAT_ERR_NOTFOUND;
	}
	m = NLMSG_DATA(&resp.nlh);
	/* A dual-stack socket on IPv4 reports v4-mapped addresses. */
	if (m->idiag_family == AF_INET6 && src->sa_family == AF_INET) {
		map4(req.r.id.idiag_src);
		map4(req.r.id.idiag_dst);
		alen = 16;
	}
	/* A listener (or anything else) answering for the tuple: refused. */
	if (m->id.idiag_sport != req.r.id.idiag_sport ||
	    m->id.idiag_dport != req.r.id.idiag_dport ||
	    memcmp(m->id.idiag_src, req.r.id.idiag_src, alen) != 0 ||
	    memcmp(m->id.idiag_dst, req.r.id.idiag_dst, alen) != 0) {
		snprintf(why, whylen, "the socket the kernel reports for the "
		    "connection is not the connection (a %s socket answered)",
		    state_name(m->idiag_state));
		return MOAT_ERR_DENIED;
	}
	if (m->idiag_state >= 32 || !(states & (1u << m->idiag_state))) {
		snprintf(why, whylen, "the connection's socket is in state %s",
		    state_name(m->idiag_state));
		return MOAT_ERR_DENIED;
	}
	out->cookie = (uint64_t)m->id.idiag_cookie[1] << 32 |
	    m->id.idiag_cookie[0];
	out->inode = m->idiag_inode;
	return MOAT_OK;
}

static void
hexaddr(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		snprintf(out, len, "%08X:%04X", s->sin_addr.s_addr,
		    ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)sa;
		const uint32_t *w = (const uint32_t *)&s->sin6_addr;
		snprintf(out, len, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2],
		    w[3], ntohs(s->sin6_port));
	}
}

/* /proc/<pid>/net/tcp{,6}: "sl local rem st ... uid timeout inode". */
int
px_proc_find(pid_t init_pid, const struct sockaddr *src,
    const struct sockaddr *dst, unsigned states, struct px_sock *out,
    char *why, size_t whylen)
{
	char path[64], want_l[64], want_r[64], line[512];
	unsigned st = 0;
	unsigned long inode = 0;
	FILE *f;

	hexaddr(src, want_l, sizeof(want_l));
	hexaddr(dst, want_r, sizeof(want_r));
	if (init_pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/net/tcp%s", (int)init_pid,
		    src->sa_family == AF_INET6 ? "6" : "");
	else
		snprintf(path, sizeof(path), "/proc/self/net/tcp%s",
		    src->sa_family == AF_INET6 ? "6" : "");
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(why, whylen, "cannot read %s", path);
		return px_out_of_fds(errno) ? PX_NOFD : MOAT_ERR_NOTFOUND;
	}
	while (inode == 0 && fgets(line, sizeof(line), f) != NULL) {
		char l[64], r[64];
		unsigned long ino;
		unsigned s;
		/* The exact tuple only: a listener's remote is all zeros. */
		if (sscanf(line, "%*d: %63s %63s %x %*s %*s %*s %*d %*d %lu",
		    l, r, &s, &ino) == 4 && strcmp(l, want_l) == 0 &&
		    strcmp(r, want_r) == 0) {
			inode = ino;
			st = s;
		}
	}
	fclose(f);
	if (inode == 0) {
		snprintf(why, whylen, "no socket found for the connection");
		return MOAT_ERR_NOTFOUND;
	}
	if (st >= 32 || !(states & (1u << st))) {
		snprintf(why, whylen, "the connection's socket is in state %s",
		    state_name(st));
		return MOAT_ERR_DENIED;
	}
	out->cookie = 0;
	out->inode = inode;
	return MOAT_OK;
}
