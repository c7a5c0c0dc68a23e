/*
 * The monitor channel's messages (sshd/monitor.h): a u32 type, u32 and
 * str fields, fds as SCM_RIGHTS, the sender's pid as SCM_CREDENTIALS.
 * The reader is the monitor's first line of defence, so every get is
 * bounds-checked and a message must be read to its last byte.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "sshd/monitor.h"

void
mon_msg_init(struct mon_msg *m, uint32_t type)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < MON_FDS_MAX; i++)
		m->fds[i] = -1;
	mon_put_u32(m, type);
}

void
mon_msg_free(struct mon_msg *m)
{
	if (!m->ext)
		free(m->buf);
	m->buf = NULL;
	m->len = m->cap = m->off = 0;
	for (int i = 0; i < m->nfds; i++)
		moat_close(m->fds[i]);
	m->nfds = 0;
}

static bool
reserve(struct mon_msg *m, size_t n)
{
	unsigned char *nb;
	size_t cap;

	if (m->bad || n > MON_MSG_MAX - m->len) {
		m->bad = true;
		return false;
	}
	if (m->len + n <= m->cap)
		return true;
	cap = m->cap != 0 ? m->cap : 256;
	while (cap < m->len + n)
		cap *= 2;
	if (cap > MON_MSG_MAX)
		cap = MON_MSG_MAX;
	if ((nb = realloc(m->buf, cap)) == NULL) {
		m->bad = true;
		return false;
	}
	m->buf = nb;
	m->cap = cap;
	return true;
}

void
mon_put_u32(struct mon_msg *m, uint32_t v)
{
	if (!reserve(m, sizeof(v)))
		return;
	memcpy(m->buf + m->len, &v, sizeof(v));
	m->len += sizeof(v);
}

void
mon_put_str(struct mon_msg *m, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n > UINT32_MAX) {
		m->bad = true;
		return;
	}
	mon_put_u32(m, (uint32_t)n);
	if (!reserve(m, n + 1))
		return;
	if (n > 0)
		memcpy(m->buf + m->len, s, n);
	m->buf[m->len + n] = '\0';
	m->len += n + 1;
}

void
mon_put_fd(struct mon_msg *m, int fd)
{
	/* Sent, not owned: mon_msg_free must not close the sender's fd. */
	if (m->nfds >= MON_FDS_MAX || fd < 0) {
		m->bad = true;
		return;
	}
	m->fds[m->nfds++] = fd;
}

bool
mon_get_u32(struct mon_msg *m, uint32_t *v)
{
	if (m->bad || m->len - m->off < sizeof(*v)) {
		m->bad = true;
		return false;
	}
	memcpy(v, m->buf + m->off, sizeof(*v));
	m->off += sizeof(*v);
	return true;
}

bool
mon_get_type(struct mon_msg *m, uint32_t *type)
{
	m->off = 0;
	return mon_get_u32(m, type);
}

bool
mon_get_str(struct mon_msg *m, const char **s, size_t max)
{
	uint32_t n;

	if (!mon_get_u32(m, &n))
		return false;
	/* The length, its NUL, and no NUL before it. */
	if (n > max || m->len - m->off < (size_t)n + 1 ||
	    m->buf[m->off + n] != '\0' ||
	    memchr(m->buf + m->off, '\0', n) != NULL) {
		m->bad = true;
		return false;
	}
	*s = (const char *)m->buf + m->off;
	m->off += (size_t)n + 1;
	return true;
}

bool
mon_msg_done(const struct mon_msg *m)
{
	return !m->bad && m->off == m->len;
}

int
mon_take_fd(struct mon_msg *m, int i)
{
	if (i < 0 || i >= m->nfds)
		return -1;
	return moat_steal_fd(&m->fds[i]);
}

int
mon_send(int fd, struct mon_msg *m)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * MON_FDS_MAX)];
	} cm;
	struct iovec iov = { m->buf, m->len };
	struct msghdr mh = { 0 };
	ssize_t n;

	if (m->bad || m->len == 0)
		return MOAT_ERR_INVALID;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (m->nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)m->nfds);
		cm.h.cmsg_level = SOL_SOCKET;
		cm.h.cmsg_type = SCM_RIGHTS;
		cm.h.cmsg_len = CMSG_LEN(sizeof(int) * (size_t)m->nfds);
		memcpy(CMSG_DATA(&cm.h), m->fds, sizeof(int) * (size_t)m->nfds);
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	/* The fds were the sender's: forget them, never close them. */
	m->nfds = 0;
	return n == (ssize_t)m->len ? MOAT_OK : MOAT_ERR_SYSTEM;
}

/* Keep the fds of one SCM_RIGHTS header; false when there are too many. */
static bool
take_rights(struct mon_msg *m, struct cmsghdr *c)
{
	size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	int fds[64];
	bool ok = true;

	if (n > MOAT_NELEM(fds))
		n = MOAT_NELEM(fds);
	memcpy(fds, CMSG_DATA(c), n * sizeof(int));
	for (size_t i = 0; i < n; i++) {
		if (m->nfds < MON_FDS_MAX) {
			m->fds[m->nfds++] = fds[i];
		} else {
			close(fds[i]);
			ok = false;
		}
	}
	return ok;
}

/*
 * The size of the next message, without taking it (and without its fds:
 * no control buffer, so none are installed here). 0 at EOF.
 */
static ssize_t
peek_len(int fd, int flags)
{
	char b;
	struct iovec iov = { &b, 1 };
	struct msghdr mh = { 0 };
	ssize_t n;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	do {
		n = recvmsg(fd, &mh, MSG_PEEK | MSG_TRUNC | flags);
	} while (n < 0 && errno == EINTR);
	return n;
}

/* Receive into m->buf (m->cap bytes), fds and credentials. */
static int
recv_one(int fd, struct mon_msg *m)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * MON_FDS_MAX) +
		    CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct msghdr mh = { 0 };
	struct iovec iov;
	struct cmsghdr *c;
	bool ok = true;
	ssize_t n;

	iov.iov_base = m->buf;
	iov.iov_len = m->cap;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.b;
	mh.msg_controllen = sizeof(cm.b);
	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return MOAT_ERR_SYSTEM;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS)
			ok = take_rights(m, c) && ok;
		else if (c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			struct ucred uc;
			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			m->pid = uc.pid;
		}
	}
	if (n == 0 && m->nfds == 0)
		return MOAT_ERR_NOTFOUND;
	m->len = (size_t)n;
	if (!ok || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
		return MOAT_ERR_INVALID;
	return MOAT_OK;
}

static void
msg_reset(struct mon_msg *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < MON_FDS_MAX; i++)
		m->fds[i] = -1;
}

int
mon_recv(int fd, struct mon_msg *m, bool nonblock)
{
	ssize_t n;

	msg_reset(m);
	/*
	 * Exactly the message's size: a big buffer per message would make
	 * malloc consolidate (and so touch) every free chunk of a heap
	 * these processes share copy-on-write with their parent.
	 */
	if ((n = peek_len(fd, nonblock ? MSG_DONTWAIT : 0)) < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? MOAT_ERR_AGAIN :
		    MOAT_ERR_SYSTEM;
	/* Longer than allowed: read short, and MSG_TRUNC rejects it. */
	m->cap = n > MON_MSG_MAX ? MON_MSG_MAX : n > 0 ? (size_t)n : 1;
	if ((m->buf = malloc(m->cap)) == NULL)
		return MOAT_ERR_NOMEM;
	return recv_one(fd, m);
}

int
mon_recv_into(int fd, struct mon_msg *m, void *buf, size_t cap)
{
	ssize_t n;

	msg_reset(m);
	m->ext = true;
	m->buf = buf;
	m->cap = cap;
	/* Block until a message (or EOF) is there; recv_one does not. */
	if ((n = peek_len(fd, 0)) < 0)
		return MOAT_ERR_SYSTEM;
	return recv_one(fd, m);
}

const char *
mon_loopback_target(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (host == NULL)
		return NULL;
	if (strcasecmp(host, "localhost") == 0)
		return "127.0.0.1";
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127 ? host : NULL;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ? host : NULL;
	return NULL;
}

void
mon_log_safe(const char *in, char *out, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return;
	for (; in != NULL && in[i] != '\0' && i + 1 < len; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
}
