/*
 * Proxy benchmark client.
 *
 *	bench_client connect PROXY PORT HOST UPORT N
 *	    N sequential CONNECT handshakes, each followed by one echo round
 *	    trip through the tunnel (UPORT is an echo server); prints the
 *	    median and mean microseconds per connection.
 *	bench_client direct - - HOST UPORT N
 *	    the same without a proxy (TCP connect + echo round trip).
 *	bench_client get PROXY PORT HOST UPORT SECONDS CLIENTS
 *	    forward GETs (absolute form, Connection: close, new connection
 *	    per request) from CLIENTS threads; prints requests per second.
 *	bench_client bulk PROXY PORT HOST UPORT BYTES
 *	    one CONNECT tunnel, then a GET /BYTES through it; prints MB/s.
 *	    PROXY "-" means direct.
 *	bench_client idle PROXY PORT HOST UPORT N SECONDS
 *	    open N CONNECT tunnels and hold them SECONDS (for memory).
 *
 * PROXY "env" takes the proxy's address and port from $HTTP_PROXY (how a
 * client inside a moat sandbox finds it).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *g_proxy, *g_host;
static int g_pport, g_uport, g_seconds;
static volatile long g_count;

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
dial(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, one = 1;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read until the end of a response head; returns bytes past it or -1. */
static int
read_head(int fd, char *buf, size_t len)
{
	size_t have = 0;

	while (have < len - 1) {
		ssize_t n = read(fd, buf + have, len - 1 - have);
		char *e;
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		if ((e = strstr(buf, "\r\n\r\n")) != NULL) {
			if (strncmp(buf, "HTTP/1.", 7) != 0 ||
			    strncmp(buf + 9, "200", 3) != 0)
				return -1;
			return (int)(have - (size_t)(e + 4 - buf));
		}
	}
	return -1;
}

static int
open_tunnel(void)
{
	char req[512], buf[4096];
	int fd, n;

	if (strcmp(g_proxy, "-") == 0)
		return dial(g_host, g_uport);
	if ((fd = dial(g_proxy, g_pport)) < 0)
		return -1;
	n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: "
	    "%s:%d\r\n\r\n", g_host, g_uport, g_host, g_uport);
	if (write(fd, req, (size_t)n) != n || read_head(fd, buf,
	    sizeof(buf)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int
bench_connect(int n)
{
	double *v = calloc((size_t)n, sizeof(*v)), sum = 0;
	char b[2];

	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		int fd = open_tunnel();
		if (fd < 0 || write(fd, "x", 1) != 1 || read(fd, b, 1) != 1) {
			fprintf(stderr, "bench_client: connect %d failed\n", i);
			return 1;
		}
		v[i] = now_us() - t0;
		sum += v[i];
		close(fd);
	}
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("median_us %.1f mean_us %.1f\n", v[n / 2], sum / n);
	return 0;
}

static void *
get_worker(void *arg)
{
	double end = now_us() + g_seconds * 1e6;
	char req[512], buf[8192];
	int n = snprintf(req, sizeof(req), "GET http://%s:%d/64 HTTP/1.1\r\n"
	    "Host: %s:%d\r\nConnection: close\r\n\r\n", g_host, g_uport,
	    g_host, g_uport);

	(void)arg;
	while (now_us() < end) {
		int fd = dial(g_proxy, g_pport);
		ssize_t r;
		if (fd < 0)
			continue;
		if (write(fd, req, (size_t)n) == n) {
			size_t got = 0;
			bool ok200 = false;
			/* The status is in the first bytes, not the last read. */
			while ((r = read(fd, buf, sizeof(buf))) > 0) {
				if (got == 0 && r > 12)
					ok200 = strncmp(buf + 9, "200", 3) == 0;
				got += (size_t)r;
			}
			if (ok200)
				__sync_fetch_and_add(&g_count, 1);
		}
		close(fd);
	}
	return NULL;
}

static int
bench_get(int clients)
{
	pthread_t t[256];

	for (int i = 0; i < clients && i < 256; i++)
		pthread_create(&t[i], NULL, get_worker, NULL);
	for (int i = 0; i < clients && i < 256; i++)
		pthread_join(t[i], NULL);
	printf("rps %.0f\n", (double)g_count / g_seconds);
	return 0;
}

static int
bench_bulk(long long bytes)
{
	char req[256], *buf = malloc(1 << 20);
	long long got = 0;
	double t0 = now_us();
	int fd = open_tunnel(), n, extra;

	if (fd < 0)
		return 1;
	n = snprintf(req, sizeof(req), "GET /%lld HTTP/1.1\r\nHost: x\r\n\r\n",
	    bytes);
	if (write(fd, req, (size_t)n) != n ||
	    (extra = read_head(fd, buf, 4096)) < 0)
		return 1;
	got = extra;
	while (got < bytes) {
		ssize_t r = read(fd, buf, 1 << 20);
		if (r <= 0)
			break;
		got += r;
	}
	printf("mbps %.1f bytes %lld\n", got / ((now_us() - t0)), got);
	return got == bytes ? 0 : 1;
}

static int
bench_idle(int n, int seconds)
{
	int ok = 0;
	char b[2];

	/* Let the caller measure the proxy before the tunnels exist. */
	printf("start\n");
	fflush(stdout);
	sleep(1);
	for (int i = 0; i < n; i++) {
		int fd = open_tunnel();
		if (fd >= 0 && write(fd, "x", 1) == 1 && read(fd, b, 1) == 1)
			ok++;
	}
	printf("open %d\n", ok);
	fflush(stdout);
	sleep((unsigned)seconds);
	return ok == n ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: see the comment in bench_client.c\n");
		return 100;
	}
	g_proxy = argv[2];
	g_pport = atoi(argv[3]);
	if (strcmp(g_proxy, "env") == 0) {
		static char addr[64];
		const char *e = getenv("HTTP_PROXY"), *h, *c;
		if (e == NULL || (h = strstr(e, "://")) == NULL ||
		    (c = strrchr(h + 3, ':')) == NULL) {
			fprintf(stderr, "bench_client: HTTP_PROXY not set\n");
			return 100;
		}
		snprintf(addr, sizeof(addr), "%.*s", (int)(c - h - 3), h + 3);
		g_proxy = addr;
		g_pport = atoi(c + 1);
	}
	g_host = argv[4];
	g_uport = atoi(argv[5]);
	if (strcmp(argv[1], "connect") == 0 || strcmp(argv[1], "direct") == 0)
		return bench_connect(atoi(argv[6]));
	if (strcmp(argv[1], "get") == 0 && argc == 8) {
		g_seconds = atoi(argv[6]);
		return bench_get(atoi(argv[7]));
	}
	if (strcmp(argv[1], "bulk") == 0)
		return bench_bulk(atoll(argv[6]));
	if (strcmp(argv[1], "idle") == 0 && argc == 8)
		return bench_idle(atoi(argv[6]), atoi(argv[7]));
	fprintf(stderr, "bench_client: unknown mode %s\n", argv[1]);
	return 100;
}
