/*
 * The tunnel relay: each direction moves bytes socket -> pipe -> socket
 * with splice(2), so payload never crosses into user space. A direction
 * reads only while its pipe is empty: when the receiver is slow, the
 * pipe stays full, we stop reading, and TCP pushes back on the sender.
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

static int
half_init(struct px_half *h, int from, int to)
{
	memset(h, 0, sizeof(*h));
	h->from = from;
	h->to = to;
	h->limit = UINT64_MAX;
	h->shut_on_done = true;
	if (pipe2(h->pipefd, O_CLOEXEC | O_NONBLOCK) == -1) {
		h->pipefd[0] = h->pipefd[1] = -1;
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

int
px_relay_init(struct px_relay *r, int cfd, int ufd)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->up.pipefd[0] = r->up.pipefd[1] = -1;
	r->down.pipefd[0] = r->down.pipefd[1] = -1;
	if ((rc = half_init(&r->up, cfd, ufd)) != 0 ||
	    (rc = half_init(&r->down, ufd, cfd)) != 0) {
		px_relay_fini(r);
		return rc;
	}
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

static int
half_step(struct px_half *h, bool *progress)
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
			if (!h->done && h->eof && h->shut_on_done)
				shutdown(h->to, SHUT_WR);
			h->done = true;
			return MOAT_OK;
		}
		if (h->chunk != NULL) {
			if ((rc = copy_framed(h, progress)) != 0)
				return rc;
			if (h->prelen == 0 && h->limit != 0)
				return MOAT_OK; /* would block */
			continue;
		}
		n = splice(h->from, NULL, h->pipefd[1], NULL,
		    h->limit < RELAY_CHUNK ? (size_t)h->limit : RELAY_CHUNK,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN ? 0 : MOAT_ERR_SYSTEM;
		*progress = true;
		if (n == 0) {
			h->eof = true;
			continue;
		}
		if (!h->grown && (size_t)n >= PIPE_DEFAULT) {
			h->grown = true;
			(void)fcntl(h->pipefd[1], F_SETPIPE_SZ, PIPE_BIG);
		}
		h->inpipe += (size_t)n;
		h->total += (uint64_t)n;
		if (h->limit != UINT64_MAX)
			h->limit -= (uint64_t)n;
	}
}

int
px_relay_step(struct px_relay *r)
{
	bool progress = false;
	int rc;

	if (!r->up.done && (rc = half_step(&r->up, &progress)) < 0)
		return rc;
	if (!r->down.done && (rc = half_step(&r->down, &progress)) < 0)
		return rc;
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
