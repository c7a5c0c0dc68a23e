/*
 * JSON lines: one JSON object per '\n'-terminated UTF-8 line. The
 * framing of every stream between moat's processes (moatd <-> proxy,
 * docs/protocols.md) and of the control socket (moat <-> moatd,
 * docs/control.md), with one set of limits for all of them:
 *
 * - A line holds at most MOAT_JSONL_MAX_LINE bytes before its '\n'.
 *   A longer one is never buffered whole: its bytes are discarded up to
 *   the next '\n', moat_jsonl_next() reports it once (MOAT_ERR_INVALID),
 *   and the line after it is read as usual. Empty lines are skipped.
 * - Reads are partial: each moat_jsonl_read() is one read(2); a line
 *   split across reads is joined. At EOF a last line without '\n' still
 *   counts.
 * - Writes never block a nonblocking fd: moat_jsonl_send() writes what
 *   the fd takes and queues the rest, at most MOAT_JSONL_MAX_QUEUE bytes.
 *   A line that does not fit is refused whole (MOAT_ERR_AGAIN), never
 *   cut. Whoever owns the fd watches it for writing while
 *   moat_jsonl_pending() is not 0 and then calls moat_jsonl_flush().
 *   On a blocking fd the same calls simply block.
 *
 * A struct moat_jsonl does not own its fd: close the fd after _free.
 */
#ifndef MOAT_COMMON_JSONL_H
#define MOAT_COMMON_JSONL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/errors.h"

/* Bytes of one line, without its '\n' (the fuzz build lowers it). */
#define MOAT_JSONL_MAX_LINE_DEFAULT (16u << 20)
#ifndef MOAT_JSONL_MAX_LINE
#define MOAT_JSONL_MAX_LINE MOAT_JSONL_MAX_LINE_DEFAULT
#endif
/* Unsent bytes one writer may hold; always room for one whole line. */
#define MOAT_JSONL_MAX_QUEUE (2 * (MOAT_JSONL_MAX_LINE + 1))
/* The most one moat_jsonl_read() asks of read(2). */
#define MOAT_JSONL_READ_CHUNK 65536u

struct moat_jsonl;

/* A framer for fd (not owned); NULL when out of memory. */
struct moat_jsonl *moat_jsonl_new(int fd);
/* Frees buffers and queued output; the fd stays open. NULL is fine. */
void moat_jsonl_free(struct moat_jsonl *j);
int moat_jsonl_fd(const struct moat_jsonl *j);

/*
 * One read(2) into the input buffer; nothing is read while a complete
 * line is still buffered (take it with moat_jsonl_next() first), so the
 * buffer never holds more than one partial line and one read.
 * 1: lines may be ready; 0: end of file (remaining lines may be ready);
 * MOAT_ERR_AGAIN: nothing to read now (EAGAIN, EINTR, or SO_RCVTIMEO
 * expired); MOAT_ERR_SYSTEM with errno in the cause; MOAT_ERR_NOMEM.
 */
int moat_jsonl_read(struct moat_jsonl *j, struct moat_cause *cause);

/*
 * The next buffered line: 1 with *line and *len (no '\n'; the bytes
 * stay valid until the next call on j), 0 when no complete line is
 * buffered, MOAT_ERR_INVALID once for each line over MOAT_JSONL_MAX_LINE
 * (already discarded; its bytes were never kept).
 */
int moat_jsonl_next(struct moat_jsonl *j, const char **line, size_t *len);

/*
 * For a loop's readable callback: up to turns reads, handing each line
 * to cb (an overlong line as line NULL, len 0) as it completes.
 * MOAT_ERR_AGAIN: the fd has nothing more now (or turns ran out); 0: end
 * of file, every line handed over; MOAT_ERR_SYSTEM or MOAT_ERR_NOMEM
 * with a cause.
 */
int moat_jsonl_pump(struct moat_jsonl *j, int turns,
    void (*cb)(void *arg, const char *line, size_t len), void *arg,
    struct moat_cause *cause);

/* True once read(2) returned end of file. */
bool moat_jsonl_eof(const struct moat_jsonl *j);

/*
 * Parse one line as a JSON object (duplicate keys refused) into *out, a
 * new reference. MOAT_ERR_INVALID with a cause naming the column.
 */
int moat_jsonl_decode(const char *line, size_t len, json_t **out,
    struct moat_cause *cause);

/* The string member "type" of a decoded message, or NULL. */
const char *moat_jsonl_type(const json_t *msg);

/*
 * Send o as one compact line: write what the fd takes, queue the rest
 * behind anything already queued. MOAT_OK (sent or queued);
 * MOAT_ERR_INVALID when the line would be over MOAT_JSONL_MAX_LINE or o
 * cannot be encoded; MOAT_ERR_AGAIN when the queue has no room for it;
 * MOAT_ERR_SYSTEM when the fd failed (the peer is gone). A line refused
 * with MOAT_ERR_INVALID or MOAT_ERR_AGAIN leaves nothing behind. o stays
 * the caller's.
 */
int moat_jsonl_send(struct moat_jsonl *j, const json_t *o);

/* The same for a line already encoded (s holds no '\n'). */
int moat_jsonl_send_line(struct moat_jsonl *j, const char *s, size_t n);

/*
 * Write queued bytes: MOAT_OK when none are left, MOAT_ERR_AGAIN when
 * the fd would block, MOAT_ERR_SYSTEM when it failed.
 */
int moat_jsonl_flush(struct moat_jsonl *j);

/* Queued bytes not yet written. */
size_t moat_jsonl_pending(const struct moat_jsonl *j);

/*
 * File descriptors along the lines (a unix stream socket only): the
 * sender attaches fds to the first byte of one line with
 * moat_jsonl_send_fds and names them in it by "fd_seq", the number of
 * fds it sent before (moat_jsonl_fd_seq); the receiver, once it called
 * moat_jsonl_recv_fds, collects every fd that arrives, numbered in
 * arrival order, and takes a line's with moat_jsonl_take_fds. Fds
 * arrive before their line is complete, so they are there when it is
 * handled. At most MOAT_JSONL_MAX_FDS wait (the oldest is closed to
 * make room). A line that never asks for its fds (dropped, invalid)
 * leaves them until a later take skips past them (they are closed
 * then) or _free.
 */
#define MOAT_JSONL_MAX_FDS 64

/* Receive with recvmsg from now on, keeping SCM_RIGHTS fds (cloexec). */
void moat_jsonl_recv_fds(struct moat_jsonl *j);
/* The number the next fd sent will have (for the line's "fd_seq"). */
unsigned long long moat_jsonl_fd_seq(const struct moat_jsonl *j);
/*
 * Send o as one line with n fds (at most 16; they stay the caller's)
 * attached to its first byte. Nothing may be queued before it:
 * MOAT_ERR_AGAIN then (flush first) or when the socket takes no byte
 * now; else as moat_jsonl_send.
 */
int moat_jsonl_send_fds(struct moat_jsonl *j, const json_t *o,
    const int *fds, size_t n);
/*
 * Take fds number seq .. seq+n-1 (closing any older one still waiting)
 * into fds[]; the caller owns them. MOAT_ERR_NOTFOUND when they did not
 * all arrive (nothing is taken).
 */
int moat_jsonl_take_fds(struct moat_jsonl *j, unsigned long long seq,
    int *fds, size_t n);

#endif
