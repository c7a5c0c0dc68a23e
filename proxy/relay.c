/*
 * The tunnel relay: each direction moves bytes socket -> pipe -> socket
 * with splice(2), so bulk payload never crosses into user space. A
 * direction reads only while nothing of it is pending: when the
 * receiver is slow, the pipe stays full, we stop reading, and TCP
 * pushes back on the sender.
 *
 * Pipes are made lazily: until one read fills COPY_BUF, a direction
 * copies through a stack buffer (recv, send; only what the receiver
 * does not take at once is kept), so a short exchange or an idle
 * tunnel costs no pipe and no splice round trips.
 *
 * A direction may first send a prefix (the 200 reply, a rewritten
 * request head), may be limited to a byte count (a Content-Length
 * body), or may be framed (a chunked body, copied through a buffer so
 * the framer sees it). Bytes past a limit or frame are never sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

/*
 * A pipe starts at the kernel's default (64 KiB); a direction that
 * fills it is moving bulk data and gets a 1 MiB pipe (fewer splice
 * and epoll rounds per byte). Idle and chatty tunnels never pay for
 * it. The kernel may refuse (pipe-max-size, the user's pipe pages):
 * then the default stays.
 */
#define RELAY_CHUNK (1024 * 1024)
#define PIPE_DEFAULT (64 * 1024)
#define PIPE_BIG (1024 * 1024)
#define COPY_BUF (16 * 1024)

static void
half_init(struct px_half *h, int from, int to)
{
	memset(h, 0, sizeof(*h));
	h->from = from;
	h->to = to;
	h->pipefd[0] = h->pipefd[1] = -1;
	h->limit = UINT64_MAX;
	h->shut_on_done = true;
}

int
px_relay_init(struct px_relay *r, int cfd, int ufd)
{
	memset(r, 0, sizeof(*r));
	half_init(&r->up, cfd, ufd);
	half_init(&r->down, ufd, cfd);
	r->last_ms = moat_now_ms();
	return MOAT_OK;
}

int
px_relay_prefix(struct px_half *h, const void *buf, size_t len)
{
	size_t need = h->prelen + len;

	if (need > h->precap) {
		char *n = realloc(h->pre, need);
		if (n == NULL)
			return MOAT_ERR_NOMEM;
		h->pre = n;
		h->precap = need;
	}
	memcpy(h->pre + h->prelen, buf, len);
	h->prelen += len;
	return MOAT_OK;
}

/* Write pending prefix bytes: 1 all written, 0 would block, <0 error. */
static int
flush_pre(struct px_half *h)
{
	while (h->preoff < h->prelen) {
		ssize_t n = send(h->to, h->pre + h->preoff,
		    h->prelen - h->preoff, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN ? 0 : MOAT_ERR_SYSTEM;
		h->preoff += (size_t)n;
	}
	h->preoff = h->prelen = 0;
	if (h->chunk == NULL && h->pre != NULL) {
		/* Sent (the 200, a request head): a tunnel keeps no buffer. */
		free(h->pre);
		h->pre = NULL;
		h->precap = 0;
	}
	return 1;
}

/* Chunked bodies: read into the prefix buffer, keep only framed bytes. */
static int
copy_framed(struct px_half *h, bool *progress)
{
	size_t used = 0;
	ssize_t n;

	if (h->precap < COPY_BUF) {
		char *b = realloc(h->pre, COPY_BUF);
		if (b == NULL)
			return MOAT_ERR_NOMEM;
		h->pre = b;
		h->precap = COPY_BUF;
	}
	n = read(h->from, h->pre, COPY_BUF);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : MOAT_ERR_SYSTEM;
	*progress = true;
	if (n == 0) {
		/* The client closed before the body ended. */
		return MOAT_ERR_INVALID;
	}
	if (moat_http_chunked_feed(h->chunk, h->pre, (size_t)n, &used) != 0)
		return MOAT_ERR_INVALID;
	h->prelen = used;
	h->preoff = 0;
	h->total += used;
	if (moat_http_chunked_done(h->chunk))
		h->limit = 0;
	return MOAT_OK;
}

/* Bytes read from h->from: count them against its limit. */
static void
took(struct px_half *h, size_t n)
{
	h->total += n;
	if (h->limit != UINT64_MAX)
		h->limit -= n;
}

/* Copy mode: recv, send at once, keep only the rest as pending. */
static ssize_t
copy_some(struct px_half *h, size_t want)
{
	char buf[COPY_BUF];
	ssize_t n, sent;

	if ((n = recv(h->from, buf, want, 0)) <= 0)
		return n;
	took(h, (size_t)n);
	do
		sent = send(h->to, buf, (size_t)n, MSG_NOSIGNAL);
	while (sent == -1 && errno == EINTR);
	if (sent == -1 && errno != EAGAIN)
		return -1;
	if (sent < 0)
		sent = 0;
	if (sent < n && px_relay_prefix(h, buf + sent, (size_t)(n - sent)) != 0) {
		errno = ENOMEM;
		return -1;
	}
	/* A full buffer: bulk data, splice from now on (or keep copying). */
	if ((size_t)n == COPY_BUF &&
	    pipe2(h->pipefd, O_CLOEXEC | O_NONBLOCK) == -1)
		h->pipefd[0] = h->pipefd[1] = -1;
	return n;
}

/* One read: 1 more may follow, 0 drained (epoll says when), <0 error. */
static int
half_read(struct px_half *h, bool *progress)
{
	size_t want = h->limit < RELAY_CHUNK ? (size_t)h->limit : RELAY_CHUNK;
	ssize_t n;

	if (h->pipefd[0] < 0) {
		if (want > COPY_BUF)
			want = COPY_BUF;
		n = copy_some(h, want);
	} else {
		n = splice(h->from, NULL, h->pipefd[1], NULL, want,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			if (!h->grown && (size_t)n >= PIPE_DEFAULT) {
				h->grown = true;
				(void)fcntl(h->pipefd[1], F_SETPIPE_SZ,
				    PIPE_BIG);
			}
			h->inpipe += (size_t)n;
			took(h, (size_t)n);
		}
	}
	if (n == -1 && errno == EINTR)
		return 1;
	if (n == -1)
		return errno == EAGAIN ? 0 : MOAT_ERR_SYSTEM;
	*progress = true;
	if (n == 0) {
		h->eof = true;
		return 1;
	}
	/* Short: the socket is drained for now (level-triggered). */
	return (size_t)n < want ? 0 : 1;
}

/*
 * Move what can move on one direction; can_read: its source reported
 * readable. other->done: the connection closes right after this one
 * ends, and the close sends the FIN (no shutdown needed).
 */
static int
half_step(struct px_half *h, const struct px_half *other, bool can_read,
    bool *progress)
{
	int rc;

	for (;;) {
		ssize_t n;

		if ((rc = flush_pre(h)) <= 0)
			return rc;
		while (h->inpipe > 0) {
			n = splice(h->pipefd[0], NULL, h->to, NULL, h->inpipe,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1)
				return errno == EAGAIN ? 0 : MOAT_ERR_SYSTEM;
			h->inpipe -= (size_t)n;
			*progress = true;
		}
		if (h->eof || h->limit == 0) {
			if (!h->done && h->eof && h->shut_on_done &&
			    !other->done)
				shutdown(h->to, SHUT_WR);
			h->done = true;
			return MOAT_OK;
		}
		if (!can_read)
			return MOAT_OK;
		if (h->chunk != NULL) {
			if ((rc = copy_framed(h, progress)) != 0)
				return rc;
			if (h->prelen == 0 && h->limit != 0)
				return MOAT_OK; /* would block */
			continue;
		}
		if ((rc = half_read(h, progress)) < 0)
			return rc;
		if (rc == 0)
			can_read = false; /* send what was read, then stop */
	}
}

int
px_relay_step(struct px_relay *r, int fd, unsigned ev)
{
	struct px_half *hs[2] = { &r->up, &r->down };
	bool progress = false;
	int rc;

	for (int i = 0; i < 2; i++) {
		struct px_half *h = hs[i];
		bool rd = fd == h->from && (ev & MOAT_EV_READ);
		bool wr = fd == h->to && (ev & MOAT_EV_WRITE);

		/* Only what the event concerns (0: the first step). */
		if (h->done || (ev != 0 && !rd && !wr))
			continue;
		if ((rc = half_step(h, hs[1 - i], rd, &progress)) < 0)
			return rc;
	}
	if (progress)
		r->last_ms = moat_now_ms();
	return r->up.done && r->down.done ? 1 : 0;
}

/* What half h needs from fd: read from its source, write to its sink. */
static unsigned
half_mask(const struct px_half *h, int fd)
{
	unsigned m = 0;
	bool pending = h->preoff < h->prelen || h->inpipe > 0;

	if (h->done)
		return 0;
	if (fd == h->to && pending)
		m |= MOAT_EV_WRITE;
	if (fd == h->from && !pending && !h->eof && h->limit != 0)
		m |= MOAT_EV_READ;
	return m;
}

unsigned
px_relay_mask(const struct px_relay *r, int fd)
{
	return half_mask(&r->up, fd) | half_mask(&r->down, fd);
}

void
px_relay_fini(struct px_relay *r)
{
	struct px_half *hs[2] = { &r->up, &r->down };

	for (int i = 0; i < 2; i++) {
		moat_close(hs[i]->pipefd[0]);
		moat_close(hs[i]->pipefd[1]);
		hs[i]->pipefd[0] = hs[i]->pipefd[1] = -1;
		free(hs[i]->pre);
		hs[i]->pre = NULL;
		free(hs[i]->chunk);
		hs[i]->chunk = NULL;
	}
}
