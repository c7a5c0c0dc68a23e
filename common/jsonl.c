/* JSON-lines framing (common/jsonl.h). */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jsonl.h"

struct moat_jsonl {
	int fd;
	char *in;	/* bytes read: [inoff, inlen) are not yet taken */
	size_t inoff;
	size_t inlen;
	size_t incap;
	size_t scan;	/* no '\n' in [inoff, scan) */
	bool skipping;	/* discarding an overlong line up to its '\n' */
	bool toobig;	/* an overlong line not yet reported */
	bool eof;
	char *out;	/* queued: [outoff, outlen) */
	size_t outoff;
	size_t outlen;
	size_t outcap;
	bool recv_fds;	/* read with recvmsg, keep SCM_RIGHTS fds */
	int fds[MOAT_JSONL_MAX_FDS]; /* received, oldest first */
	size_t nfds;
	unsigned long long fd_first; /* number of fds[0] */
	unsigned long long fds_sent;
};

#define JSONL_SEND_FDS_MAX 16

struct moat_jsonl *
moat_jsonl_new(int fd)
{
	struct moat_jsonl *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->fd = fd;
	return j;
}

void
moat_jsonl_free(struct moat_jsonl *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nfds; i++)
		close(j->fds[i]);
	free(j->in);
	free(j->out);
	free(j);
}

int
moat_jsonl_fd(const struct moat_jsonl *j)
{
	return j->fd;
}

bool
moat_jsonl_eof(const struct moat_jsonl *j)
{
	return j->eof;
}

size_t
moat_jsonl_pending(const struct moat_jsonl *j)
{
	return j->outlen - j->outoff;
}

static bool
has_nl(const struct moat_jsonl *j, size_t from)
{
	return from < j->inlen && memchr(j->in + from, '\n', j->inlen -
	    from) != NULL;
}

/* Room for one read at the end of the input buffer. */
static int
in_reserve(struct moat_jsonl *j)
{
	size_t cap;
	char *nb;

	if (j->inoff > 0) {
		memmove(j->in, j->in + j->inoff, j->inlen - j->inoff);
		j->inlen -= j->inoff;
		j->scan -= j->inoff;
		j->inoff = 0;
	}
	if (j->incap - j->inlen >= MOAT_JSONL_READ_CHUNK)
		return MOAT_OK;
	cap = j->incap ? j->incap : MOAT_JSONL_READ_CHUNK;
	while (cap - j->inlen < MOAT_JSONL_READ_CHUNK)
		cap *= 2;
	if ((nb = realloc(j->in, cap)) == NULL)
		return MOAT_ERR_NOMEM;
	j->in = nb;
	j->incap = cap;
	return MOAT_OK;
}

/*
 * New bytes arrived at [from, inlen): while skipping, drop them up to
 * and with the first '\n'; then give up on a line that grew too long.
 */
static void
in_check(struct moat_jsonl *j, size_t from)
{
	char *nl;

	if (j->skipping) {
		nl = from < j->inlen ? memchr(j->in + from, '\n', j->inlen -
		    from) : NULL;
		if (nl == NULL) {
			j->inoff = j->inlen = j->scan = 0;
			return;
		}
		j->skipping = false;
		j->inoff = j->scan = (size_t)(nl - j->in) + 1;
	}
	if (has_nl(j, j->scan))
		return;
	j->scan = j->inlen;
	if (j->inlen - j->inoff > MOAT_JSONL_MAX_LINE) {
		/* Not kept: memory stays bounded whatever the peer sends. */
		j->inoff = j->inlen = j->scan = 0;
		j->skipping = !j->eof;
		j->toobig = true;
	}
}

/* Keep a received fd; when too many wait, the oldest goes. */
static void
fd_keep(struct moat_jsonl *j, int fd)
{
	if (j->nfds == MOAT_JSONL_MAX_FDS) {
		close(j->fds[0]);
		memmove(j->fds, j->fds + 1, (j->nfds - 1) * sizeof(*j->fds));
		j->nfds--;
		j->fd_first++;
	}
	j->fds[j->nfds++] = fd;
}

static ssize_t
recv_with_fds(struct moat_jsonl *j, char *buf, size_t len)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(JSONL_SEND_FDS_MAX * 2 * sizeof(int))];
	} ctl;
	struct iovec iov = { buf, len };
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = sizeof(ctl.b);
	if ((n = recvmsg(j->fd, &mh, MSG_CMSG_CLOEXEC)) < 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			fd_keep(j, fd);
		}
	}
	/*
	 * Some fds did not arrive (no room for them here, or the control
	 * buffer was short): the count would be off for every later line,
	 * handing one line another's fds. The channel is broken.
	 */
	if (mh.msg_flags & MSG_CTRUNC) {
		errno = EPROTO;
		return -1;
	}
	return n;
}

void
moat_jsonl_recv_fds(struct moat_jsonl *j)
{
	j->recv_fds = true;
}

unsigned long long
moat_jsonl_fd_seq(const struct moat_jsonl *j)
{
	return j->fds_sent;
}

int
moat_jsonl_take_fds(struct moat_jsonl *j, unsigned long long seq, int *fds,
    size_t n)
{
	size_t skip, i;

	if (seq < j->fd_first || seq + n > j->fd_first + j->nfds)
		return MOAT_ERR_NOTFOUND;
	/* Older fds were never asked for: their lines are gone. */
	skip = (size_t)(seq - j->fd_first);
	for (i = 0; i < skip; i++)
		close(j->fds[i]);
	memcpy(fds, j->fds + skip, n * sizeof(*fds));
	memmove(j->fds, j->fds + skip + n, (j->nfds - skip - n) *
	    sizeof(*j->fds));
	j->nfds -= skip + n;
	j->fd_first = seq + n;
	return MOAT_OK;
}

int
moat_jsonl_read(struct moat_jsonl *j, struct moat_cause *cause)
{
	size_t from;
	ssize_t n;
	int r;

	if (j->eof)
		return 0;
	if (!j->skipping && has_nl(j, j->scan))
		return 1;
	if ((r = in_reserve(j)) != 0)
		return r;
	n = j->recv_fds ? recv_with_fds(j, j->in + j->inlen,
	    MOAT_JSONL_READ_CHUNK) : read(j->fd, j->in + j->inlen,
	    MOAT_JSONL_READ_CHUNK);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return MOAT_ERR_AGAIN;
	if (n == -1) {
		moat_cause_errno(cause, "read");
		return MOAT_ERR_SYSTEM;
	}
	from = j->inlen;
	j->inlen += (size_t)n;
	if (n == 0)
		j->eof = true;
	in_check(j, from);
	return n == 0 ? 0 : 1;
}

int
moat_jsonl_next(struct moat_jsonl *j, const char **line, size_t *len)
{
	char *nl;
	size_t start;

	if (j->toobig) {
		j->toobig = false;
		return MOAT_ERR_INVALID;
	}
	for (;;) {
		start = j->inoff;
		nl = j->scan < j->inlen ? memchr(j->in + j->scan, '\n',
		    j->inlen - j->scan) : NULL;
		if (nl == NULL) {
			j->scan = j->inlen;
			/* At EOF the last line needs no '\n'. */
			if (!j->eof || j->inlen == j->inoff)
				return 0;
			j->inoff = j->scan = j->inlen;
			if (j->inlen - start > MOAT_JSONL_MAX_LINE)
				return MOAT_ERR_INVALID;
			*line = j->in + start;
			*len = j->inlen - start;
			return 1;
		}
		j->inoff = j->scan = (size_t)(nl - j->in) + 1;
		if (nl == j->in + start)
			continue; /* an empty line */
		if ((size_t)(nl - j->in) - start > MOAT_JSONL_MAX_LINE)
			return MOAT_ERR_INVALID;
		*line = j->in + start;
		*len = (size_t)(nl - j->in) - start;
		return 1;
	}
}

int
moat_jsonl_pump(struct moat_jsonl *j, int turns,
    void (*cb)(void *arg, const char *line, size_t len), void *arg,
    struct moat_cause *cause)
{
	const char *line;
	size_t len;
	int r, rd;

	for (int i = 0; i < turns; i++) {
		if ((rd = moat_jsonl_read(j, cause)) == MOAT_ERR_AGAIN)
			return rd;
		while ((r = moat_jsonl_next(j, &line, &len)) != 0)
			cb(arg, r > 0 ? line : NULL, r > 0 ? len : 0);
		if (rd <= 0)
			return rd;
	}
	return MOAT_ERR_AGAIN;
}

int
moat_jsonl_decode(const char *line, size_t len, json_t **out,
    struct moat_cause *cause)
{
	json_error_t jerr;
	json_t *o;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		moat_cause_set(cause, "not JSON: %s at column %d", jerr.text,
		    jerr.column);
		return MOAT_ERR_INVALID;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		moat_cause_set(cause, "not a JSON object");
		return MOAT_ERR_INVALID;
	}
	*out = o;
	return MOAT_OK;
}

const char *
moat_jsonl_type(const json_t *msg)
{
	return json_string_value(json_object_get(msg, "type"));
}

/* write(2) for sockets without SIGPIPE, and for anything else. */
static ssize_t
put(int fd, const char *p, size_t n)
{
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

	if (w == -1 && errno == ENOTSOCK)
		w = write(fd, p, n);
	return w;
}

int
moat_jsonl_flush(struct moat_jsonl *j)
{
	ssize_t w;

	while (j->outoff < j->outlen) {
		w = put(j->fd, j->out + j->outoff, j->outlen - j->outoff);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return MOAT_ERR_AGAIN;
		if (w <= 0)
			return MOAT_ERR_SYSTEM;
		j->outoff += (size_t)w;
	}
	j->outoff = j->outlen = 0;
	return MOAT_OK;
}

/* Append s and a '\n' to the queue; the caller checked the bound. */
static int
queue(struct moat_jsonl *j, const char *s, size_t n)
{
	size_t cap;
	char *nb;

	if (j->outoff > 0 && j->outoff >= j->outlen / 2) {
		memmove(j->out, j->out + j->outoff, j->outlen - j->outoff);
		j->outlen -= j->outoff;
		j->outoff = 0;
	}
	if (j->outcap - j->outlen < n + 1) {
		cap = j->outcap ? j->outcap : 4096;
		while (cap - j->outlen < n + 1)
			cap *= 2;
		if ((nb = realloc(j->out, cap)) == NULL)
			return MOAT_ERR_NOMEM;
		j->out = nb;
		j->outcap = cap;
	}
	memcpy(j->out + j->outlen, s, n);
	j->out[j->outlen + n] = '\n';
	j->outlen += n + 1;
	return MOAT_OK;
}

int
moat_jsonl_send_line(struct moat_jsonl *j, const char *s, size_t n)
{
	int r;

	if (n > MOAT_JSONL_MAX_LINE || memchr(s, '\n', n) != NULL)
		return MOAT_ERR_INVALID;
	if (moat_jsonl_pending(j) + n + 1 > MOAT_JSONL_MAX_QUEUE)
		return MOAT_ERR_AGAIN;
	if ((r = queue(j, s, n)) != 0)
		return r;
	r = moat_jsonl_flush(j);
	return r == MOAT_ERR_AGAIN ? MOAT_OK : r;
}

int
moat_jsonl_send_fds(struct moat_jsonl *j, const json_t *o, const int *fds,
    size_t n)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(JSONL_SEND_FDS_MAX * sizeof(int))];
	} ctl;
	struct msghdr mh;
	struct iovec iov;
	struct cmsghdr *cm;
	size_t len;
	ssize_t w;
	char *s;
	int r;

	if (n == 0)
		return moat_jsonl_send(j, o);
	if (n > JSONL_SEND_FDS_MAX)
		return MOAT_ERR_INVALID;
	if (moat_jsonl_pending(j) > 0)
		return MOAT_ERR_AGAIN;
	if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL)
		return MOAT_ERR_INVALID;
	len = strlen(s);
	if (len > MOAT_JSONL_MAX_LINE || memchr(s, '\n', len) != NULL) {
		free(s);
		return MOAT_ERR_INVALID;
	}
	/* The line and its '\n' go through the queue; the fds with byte 0. */
	if ((r = queue(j, s, len)) != 0) {
		free(s);
		return r;
	}
	free(s);
	memset(&mh, 0, sizeof(mh));
	memset(&ctl, 0, sizeof(ctl));
	iov.iov_base = j->out + j->outoff;
	iov.iov_len = j->outlen - j->outoff;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	while ((w = sendmsg(j->fd, &mh, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	if (w <= 0) {
		/* Not one byte went: the line is not sent at all. */
		j->outoff = j->outlen = 0;
		return w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) ?
		    MOAT_ERR_AGAIN : MOAT_ERR_SYSTEM;
	}
	j->fds_sent += n;
	j->outoff += (size_t)w;
	r = moat_jsonl_flush(j);
	return r == MOAT_ERR_AGAIN ? MOAT_OK : r;
}

int
moat_jsonl_send(struct moat_jsonl *j, const json_t *o)
{
	char *s;
	int r;

	if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL)
		return MOAT_ERR_INVALID;
	r = moat_jsonl_send_line(j, s, strlen(s));
	free(s);
	return r;
}
