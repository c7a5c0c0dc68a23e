/*
 * Fuzz the JSON-lines framer (common/jsonl.c) against a model of it:
 * the input goes through a socketpair in pieces whose sizes come from
 * the input itself; every line the framer returns must be the next
 * non-empty '\n'-separated piece of the input, every piece over the
 * limit must be reported as such, and every line is then decoded. The
 * fuzz build lowers MOAT_JSONL_MAX_LINE (GNUmakefile) so that inputs of
 * a few KiB reach the overlong path.
 */
#include <sys/socket.h>

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jsonl.h"
#include "common/util.h"

struct model {
	const uint8_t *d;
	size_t n;
	size_t pos;
};

/* The next piece the framer must report: 1 a line, MOAT_ERR_INVALID, 0. */
static int
model_next(struct model *m, const uint8_t **line, size_t *len)
{
	const uint8_t *nl;
	size_t start;

	while (m->pos < m->n) {
		start = m->pos;
		nl = memchr(m->d + start, '\n', m->n - start);
		m->pos = nl != NULL ? (size_t)(nl - m->d) + 1 : m->n;
		*line = m->d + start;
		*len = (nl != NULL ? (size_t)(nl - m->d) : m->n) - start;
		if (*len == 0)
			continue;
		return *len > MOAT_JSONL_MAX_LINE ? MOAT_ERR_INVALID : 1;
	}
	return 0;
}

static void
check_lines(struct moat_jsonl *j, struct model *m)
{
	const uint8_t *want;
	const char *line;
	size_t len, wlen;
	json_t *o;
	int r;

	while ((r = moat_jsonl_next(j, &line, &len)) != 0) {
		if (model_next(m, &want, &wlen) != r)
			__builtin_trap();
		if (r != 1)
			continue;
		if (len != wlen || memcmp(line, want, len) != 0)
			__builtin_trap();
		if (moat_jsonl_decode(line, len, &o, NULL) == 0) {
			(void)moat_jsonl_type(o);
			json_decref(o);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m = { data, size, 0 };
	struct moat_jsonl *j = NULL;
	const uint8_t *want;
	size_t off = 0, chunk, wlen;
	int sv[2] = { -1, -1 };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	moat_fd_nonblock(sv[0]);
	if ((j = moat_jsonl_new(sv[0])) == NULL)
		goto out;
	while (off < size) {
		/* Piece sizes from the data: 1..64 bytes. */
		chunk = (size_t)(data[off] % 64) + 1;
		if (chunk > size - off)
			chunk = size - off;
		if (moat_write_all(sv[1], data + off, chunk) != 0)
			goto out;
		off += chunk;
		while (moat_jsonl_read(j, NULL) == 1)
			check_lines(j, &m);
	}
	close(sv[1]);
	sv[1] = -1;
	for (int i = 0; i < 1000 && !moat_jsonl_eof(j); i++) {
		moat_jsonl_read(j, NULL);
		check_lines(j, &m);
	}
	check_lines(j, &m);
	/* Everything the model holds was reported. */
	if (model_next(&m, &want, &wlen) != 0)
		__builtin_trap();
out:
	moat_jsonl_free(j);
	moat_close(sv[0]);
	moat_close(sv[1]);
	return 0;
}
