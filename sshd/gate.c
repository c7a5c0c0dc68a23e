/*
 * MaxStartups for moat's listeners: how many connections may be in
 * pre-auth at once, overall and per source address. Each admitted
 * connection holds one entry with the read end of a pipe whose write end
 * its monitor holds until the client authenticates (or the monitor
 * ends); the pipe's EOF releases the entry. Over the limits a connection
 * is refused before any process exists for it.
 *
 * Overall, as OpenSSH's start:rate:full: below `start` everything is
 * admitted; from `start` on a new connection is refused with probability
 * `rate` %, rising linearly to 100 % at `full`. Per source: at most
 * `per_source` pre-auth connections from one IPv4 address or one IPv6
 * /64; unix-socket relays share no source limit (only root can reach
 * that socket).
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "sshd/gate.h"

struct gate_entry {
	int fd;			/* startup pipe, read end; -1: free slot */
	bool has_src;
	unsigned char src[16];	/* v4 address, or the v6 /64 */
};

struct sshd_gate {
	struct moat_sshd_startups cfg;
	struct gate_entry *e;
	int cap;
	int n;			/* entries in use */
};

int
sshd_gate_new(const struct moat_sshd_startups *cfg, struct sshd_gate **out)
{
	struct sshd_gate *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return MOAT_ERR_NOMEM;
	g->cfg = *cfg;
	if (g->cfg.full <= 0)
		g->cfg.full = 100;
	if (g->cfg.start <= 0 || g->cfg.start > g->cfg.full)
		g->cfg.start = g->cfg.full;
	if (g->cfg.rate < 0 || g->cfg.rate > 100)
		g->cfg.rate = 100;
	g->cap = g->cfg.full;
	if ((g->e = calloc((size_t)g->cap, sizeof(*g->e))) == NULL) {
		free(g);
		return MOAT_ERR_NOMEM;
	}
	for (int i = 0; i < g->cap; i++)
		g->e[i].fd = -1;
	*out = g;
	return 0;
}

void
sshd_gate_free(struct sshd_gate *g)
{
	if (g == NULL)
		return;
	for (int i = 0; i < g->cap; i++)
		moat_close(g->e[i].fd);
	free(g->e);
	free(g);
}

static bool
source_of(const struct sockaddr_storage *ss, unsigned char src[16])
{
	memset(src, 0, 16);
	if (ss->ss_family == AF_INET) {
		memcpy(src, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		/* One /64: a host gets a whole one and picks any address. */
		memcpy(src, &((const struct sockaddr_in6 *)ss)->sin6_addr, 8);
		src[15] = 6;
		return true;
	}
	return false;
}

bool
sshd_gate_admit(const struct sshd_gate *g, const struct sockaddr_storage *ss)
{
	unsigned char src[16];
	int same = 0;
	unsigned p;

	if (g->n >= g->cfg.full)
		return false;
	if (g->cfg.per_source > 0 && source_of(ss, src)) {
		for (int i = 0; i < g->cap; i++)
			if (g->e[i].fd >= 0 && g->e[i].has_src &&
			    memcmp(g->e[i].src, src, 16) == 0)
				same++;
		if (same >= g->cfg.per_source)
			return false;
	}
	if (g->n < g->cfg.start)
		return true;
	/* rate % at start, 100 % at full, linear between. */
	p = (unsigned)g->cfg.rate + (unsigned)((100 - g->cfg.rate) *
	    (g->n - g->cfg.start) / (g->cfg.full - g->cfg.start));
	return arc4random_uniform(100) >= p;
}

int
sshd_gate_add(struct sshd_gate *g, const struct sockaddr_storage *ss, int fd)
{
	for (int i = 0; i < g->cap; i++) {
		if (g->e[i].fd >= 0)
			continue;
		g->e[i].fd = fd;
		g->e[i].has_src = source_of(ss, g->e[i].src);
		g->n++;
		return 0;
	}
	return MOAT_ERR_AGAIN;
}

bool
sshd_gate_release(struct sshd_gate *g, int fd)
{
	for (int i = 0; i < g->cap; i++) {
		if (g->e[i].fd != fd)
			continue;
		moat_close(g->e[i].fd);
		g->e[i].fd = -1;
		g->n--;
		return true;
	}
	return false;
}

int
sshd_gate_count(const struct sshd_gate *g)
{
	return g->n;
}
