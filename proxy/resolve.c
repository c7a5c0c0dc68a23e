/*
 * The resolver: an IP literal is its own answer; then the hosts-file
 * override from the config (tests and operators pin names there); then
 * getaddrinfo on a worker thread, so a slow DNS server never blocks the
 * loop. The caller checks every answer (SSRF) and dials only those, so
 * nothing is resolved twice.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "proxy/internal.h"

#define RESOLVE_THREADS 2
#define RESOLVE_QUEUE 256 /* per sandbox, queued or running */
#define HOSTS_MAX (1 << 20)

struct px_resolver {
	struct px_pool *pool;
	char *hosts_file;
	char *hosts; /* contents, reloaded when mtime or size changes */
	struct timespec hosts_mtime;
	off_t hosts_size;
};

struct resolve_work {
	struct px_work w;
	char host[256];
	uint16_t port;
	int rc;
	struct sockaddr_storage addrs[PX_MAX_ADDRS];
	size_t n;
	void (*cb)(void *arg, int rc, const struct sockaddr_storage *addrs,
	    size_t n);
	void *arg;
};

static bool
literal(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return true;
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return true;
	}
	return false;
}

static void
hosts_reload(struct px_resolver *r)
{
	struct stat st;
	char *s = NULL;
	size_t len;

	if (r->hosts_file == NULL || stat(r->hosts_file, &st) == -1)
		return;
	if (r->hosts != NULL && st.st_size == r->hosts_size &&
	    st.st_mtim.tv_sec == r->hosts_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == r->hosts_mtime.tv_nsec)
		return;
	if (moat_read_file(r->hosts_file, HOSTS_MAX, &s, &len, NULL) != 0)
		return;
	free(r->hosts);
	r->hosts = s;
	r->hosts_size = st.st_size;
	r->hosts_mtime = st.st_mtim;
}

/* Every address the hosts file gives host, in file order. */
static size_t
hosts_lookup(struct px_resolver *r, const char *host, uint16_t port,
    struct sockaddr_storage *addrs, size_t max)
{
	char *copy, *line, *save = NULL;
	size_t n = 0;

	hosts_reload(r);
	if (r->hosts == NULL || (copy = strdup(r->hosts)) == NULL)
		return 0;
	for (line = strtok_r(copy, "\n", &save); line != NULL && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#'), *tok, *s2 = NULL;
		struct sockaddr_storage ss;

		if (hash != NULL)
			*hash = '\0';
		if ((tok = strtok_r(line, " \t\r", &s2)) == NULL ||
		    !literal(tok, port, &ss))
			continue;
		while ((tok = strtok_r(NULL, " \t\r", &s2)) != NULL) {
			size_t tl = strlen(tok);
			if (tl > 0 && tok[tl - 1] == '.')
				tok[--tl] = '\0';
			if (strcasecmp(tok, host) == 0) {
				addrs[n++] = ss;
				break;
			}
		}
	}
	free(copy);
	return n;
}

int
px_resolve_local(struct px_resolver *r, const char *host, uint16_t port,
    struct sockaddr_storage *addrs, size_t max, size_t *n)
{
	size_t k;

	if (max > 0 && literal(host, port, &addrs[0])) {
		*n = 1;
		return MOAT_OK;
	}
	if ((k = hosts_lookup(r, host, port, addrs, max)) > 0) {
		*n = k;
		return MOAT_OK;
	}
	return MOAT_ERR_NOTFOUND;
}

static int
resolve_run(struct px_work *w)
{
	struct resolve_work *rw = (struct resolve_work *)w;
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	int e;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	if ((e = getaddrinfo(rw->host, NULL, &hints, &res)) != 0) {
		rw->rc = MOAT_ERR_NOTFOUND;
		return PX_WORK_DONE;
	}
	for (ai = res; ai != NULL && rw->n < PX_MAX_ADDRS; ai = ai->ai_next) {
		struct sockaddr_storage *ss = &rw->addrs[rw->n];
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = htons(rw->port);
		else
			((struct sockaddr_in6 *)ss)->sin6_port =
			    htons(rw->port);
		rw->n++;
	}
	freeaddrinfo(res);
	rw->rc = rw->n > 0 ? MOAT_OK : MOAT_ERR_NOTFOUND;
	return PX_WORK_DONE;
}

static void
resolve_done(struct px_work *w)
{
	struct resolve_work *rw = (struct resolve_work *)w;

	if (!atomic_load(&w->cancelled))
		rw->cb(rw->arg, rw->rc, rw->addrs, rw->n);
	free(rw);
}

struct px_work *
px_resolve(struct px_resolver *r, const char *host, uint16_t port,
    const void *owner, void (*cb)(void *arg, int rc,
    const struct sockaddr_storage *addrs, size_t n), void *arg)
{
	struct resolve_work *rw;

	if ((rw = calloc(1, sizeof(*rw))) == NULL)
		return NULL;
	px_work_init(&rw->w, resolve_run, resolve_done, owner);
	moat_strlcpy(rw->host, host, sizeof(rw->host));
	rw->port = port;
	rw->rc = MOAT_ERR_NOTFOUND;
	rw->cb = cb;
	rw->arg = arg;
	if (px_pool_submit(r->pool, &rw->w) != 0) {
		free(rw);
		return NULL;
	}
	return &rw->w;
}

int
px_resolver_new(struct moat_loop *l, const char *hosts_file,
    struct px_resolver **out, struct moat_cause *cause)
{
	struct px_resolver *r;
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return MOAT_ERR_NOMEM;
	if (hosts_file != NULL && (r->hosts_file = strdup(hosts_file)) == NULL) {
		free(r);
		return MOAT_ERR_NOMEM;
	}
	if ((rc = px_pool_new(l, RESOLVE_THREADS, RESOLVE_QUEUE, "resolve",
	    &r->pool, cause)) != 0) {
		free(r->hosts_file);
		free(r);
		return rc;
	}
	*out = r;
	return MOAT_OK;
}

void
px_resolver_free(struct px_resolver *r)
{
	if (r == NULL)
		return;
	px_pool_free(r->pool);
	free(r->hosts_file);
	free(r->hosts);
	free(r);
}
