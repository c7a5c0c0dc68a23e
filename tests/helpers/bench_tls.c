/*
 * TLS benchmarks: an HTTPS upstream and the client that measures the
 * proxy's TLS termination against an untouched (tls skip) tunnel.
 *
 *	bench_tls server ADDR CERT KEY SECONDS PORT...
 *	    HTTPS/1.1 on every PORT, keep-alive: GET /N answers N bytes.
 *	bench_tls bulk PROXY PORT HOST UPORT CAFILE BYTES
 *	    CONNECT, TLS, one GET /BYTES; prints MB/s.
 *	bench_tls rps PROXY PORT HOST UPORT CAFILE SECONDS
 *	    CONNECT, TLS, then GET /64 on the kept-alive connection for
 *	    SECONDS; prints requests per second.
 *	bench_tls hs PROXY PORT HOST UPORT CAFILE N
 *	    N times CONNECT + TLS handshake + GET /1; prints the median and
 *	    mean microseconds per connection.
 *	bench_tls idle PROXY PORT HOST UPORT CAFILE N SECONDS
 *	    N terminated connections (one GET each), held SECONDS.
 *
 * PROXY "env" reads $HTTP_PROXY, CAFILE "env" reads $SSL_CERT_FILE (how
 * a client in a moat sandbox finds both).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static char zeros[1 << 16];

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- server ---- */

static void
serve(SSL *s)
{
	char buf[8192];
	size_t have = 0;
	int n;

	if (SSL_accept(s) != 1)
		return;
	while ((n = SSL_read(s, buf + have, (int)(sizeof(buf) - 1 - have))) >
	    0) {
		char *end;

		have += (size_t)n;
		buf[have] = '\0';
		while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			char *p = strchr(buf, '/');
			long long len = p != NULL ? atoll(p + 1) : 64, left;
			char hdr[128];
			size_t used = (size_t)(end + 4 - buf);

			n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\n"
			    "Content-Length: %lld\r\n\r\n", len);
			/* A small answer is one record, as servers send it. */
			if (len <= 1024) {
				char one[1200];

				memcpy(one, hdr, (size_t)n);
				memset(one + n, 0, (size_t)len);
				if (SSL_write(s, one, n + (int)len) !=
				    n + (int)len)
					return;
				len = 0;
			} else if (SSL_write(s, hdr, n) != n) {
				return;
			}
			for (left = len; left > 0;) {
				int k = left > (long long)sizeof(zeros) ?
				    (int)sizeof(zeros) : (int)left;
				if (SSL_write(s, zeros, k) != k)
					return;
				left -= k;
			}
			memmove(buf, buf + used, have - used + 1);
			have -= used;
		}
		if (have >= sizeof(buf) - 1)
			return;
	}
}

static int
server(int argc, char **argv)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct pollfd pf[8];
	int nl = 0, one = 1;
	double end;

	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, argv[3]) !=
	    1 || SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM) !=
	    1)
		return 1;
	end = now_us() + atof(argv[5]) * 1e6;
	signal(SIGCHLD, SIG_IGN);
	for (int i = 6; i < argc && nl < 8; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		inet_pton(AF_INET, argv[2], &sa.sin_addr);
		sa.sin_port = htons((uint16_t)atoi(argv[i]));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    listen(fd, 1024) != 0)
			return 1;
		pf[nl++] = (struct pollfd){ fd, POLLIN, 0 };
	}
	while (now_us() < end) {
		if (poll(pf, (nfds_t)nl, 500) <= 0)
			continue;
		for (int i = 0; i < nl; i++) {
			int c;

			if (!(pf[i].revents & POLLIN) ||
			    (c = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
				continue;
			if (fork() == 0) {
				SSL *s = SSL_new(ctx);

				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof(one));
				SSL_set_fd(s, c);
				serve(s);
				_exit(0);
			}
			close(c);
		}
	}
	return 0;
}

/* ---- client ---- */

static const char *g_proxy, *g_host;
static int g_pport, g_uport;
static SSL_CTX *g_ctx;

static int
tunnel(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char req[256], buf[4096];
	size_t have = 0;
	int fd, one = 1, n;

	inet_pton(AF_INET, g_proxy, &sa.sin_addr);
	sa.sin_port = htons((uint16_t)g_pport);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: "
	    "%s:%d\r\n\r\n", g_host, g_uport, g_host, g_uport);
	if (write(fd, req, (size_t)n) != n)
		goto fail;
	/* Byte by byte: the TLS bytes after the 200 are not ours. */
	while (have < sizeof(buf) - 1 && read(fd, buf + have, 1) == 1) {
		buf[++have] = '\0';
		if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0)
			return strncmp(buf + 9, "200", 3) == 0 ? fd : -1;
	}
fail:
	close(fd);
	return -1;
}

static SSL *
tls_open(void)
{
	int fd = tunnel();
	SSL *s;

	if (fd < 0)
		return NULL;
	s = SSL_new(g_ctx);
	SSL_set_fd(s, fd);
	SSL_set_tlsext_host_name(s, g_host);
	SSL_set1_host(s, g_host);
	if (SSL_connect(s) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_free(s);
		close(fd);
		return NULL;
	}
	return s;
}

static void
tls_close(SSL *s)
{
	int fd = SSL_get_fd(s);

	SSL_free(s);
	close(fd);
}

/* GET /len on s and read the whole response; false on error. */
static bool
get(SSL *s, long long len, char *buf, size_t blen)
{
	char req[128];
	long long got = 0, want = -1;
	size_t have = 0;
	int n = snprintf(req, sizeof(req), "GET /%lld HTTP/1.1\r\nHost: %s\r\n"
	    "\r\n", len, g_host);

	if (SSL_write(s, req, n) != n)
		return false;
	while (want < 0 || got < want) {
		int k = SSL_read(s, buf + have, (int)(blen - 1 - have));
		char *e;

		if (k <= 0)
			return false;
		if (want >= 0) {
			got += k;
			continue;
		}
		have += (size_t)k;
		buf[have] = '\0';
		if ((e = strstr(buf, "\r\n\r\n")) != NULL) {
			want = len;
			got = (long long)(have - (size_t)(e + 4 - buf));
			have = 0;
		} else if (have >= blen - 1) {
			return false;
		}
	}
	return got == want;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int
client(const char *mode, const char *arg, const char *arg2)
{
	static char buf[1 << 20];
	double t0 = now_us();
	SSL *s;

	if (strcmp(mode, "bulk") == 0) {
		long long bytes = atoll(arg);

		if ((s = tls_open()) == NULL || !get(s, bytes, buf,
		    sizeof(buf)))
			return 1;
		printf("mbps %.1f\n", bytes / (now_us() - t0));
		tls_close(s);
		return 0;
	}
	if (strcmp(mode, "rps") == 0) {
		double end = t0 + atof(arg) * 1e6;
		long n = 0;

		if ((s = tls_open()) == NULL)
			return 1;
		t0 = now_us();
		while (now_us() < end && get(s, 64, buf, sizeof(buf)))
			n++;
		printf("rps %.0f\n", n / ((now_us() - t0) / 1e6));
		tls_close(s);
		return 0;
	}
	if (strcmp(mode, "hs") == 0) {
		int n = atoi(arg);
		double *v = calloc((size_t)n, sizeof(*v)), sum = 0;

		for (int i = 0; i < n; i++) {
			double t = now_us();

			if ((s = tls_open()) == NULL || !get(s, 1, buf,
			    sizeof(buf)))
				return 1;
			v[i] = now_us() - t;
			sum += v[i];
			tls_close(s);
		}
		qsort(v, (size_t)n, sizeof(*v), cmp_double);
		printf("median_us %.1f mean_us %.1f\n", v[n / 2], sum / n);
		return 0;
	}
	if (strcmp(mode, "idle") == 0 && arg2 != NULL) {
		int n = atoi(arg), ok = 0;
		SSL **v = calloc((size_t)n, sizeof(*v));

		printf("start\n");
		fflush(stdout);
		sleep(1);
		for (int i = 0; i < n; i++)
			if ((v[i] = tls_open()) != NULL && get(v[i], 1, buf,
			    sizeof(buf)))
				ok++;
		printf("open %d\n", ok);
		fflush(stdout);
		sleep((unsigned)atoi(arg2));
		return ok == n ? 0 : 1;
	}
	fprintf(stderr, "bench_tls: unknown mode %s\n", mode);
	return 100;
}

int
main(int argc, char **argv)
{
	const char *ca;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 7 && strcmp(argv[1], "server") == 0)
		return server(argc, argv);
	if (argc < 8) {
		fprintf(stderr, "usage: see the comment in bench_tls.c\n");
		return 100;
	}
	g_proxy = argv[2];
	g_pport = atoi(argv[3]);
	if (strcmp(g_proxy, "env") == 0) {
		static char addr[64];
		const char *e = getenv("HTTP_PROXY"), *h, *c;

		if (e == NULL || (h = strstr(e, "://")) == NULL ||
		    (c = strrchr(h + 3, ':')) == NULL)
			return 100;
		snprintf(addr, sizeof(addr), "%.*s", (int)(c - h - 3), h + 3);
		g_proxy = addr;
		g_pport = atoi(c + 1);
	}
	g_host = argv[4];
	g_uport = atoi(argv[5]);
	ca = strcmp(argv[6], "env") == 0 ? getenv("SSL_CERT_FILE") : argv[6];
	g_ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
	if (ca == NULL || SSL_CTX_load_verify_locations(g_ctx, ca, NULL) != 1) {
		fprintf(stderr, "bench_tls: cannot load %s\n", ca ? ca : "CA");
		return 100;
	}
	return client(argv[1], argv[7], argc > 8 ? argv[8] : NULL);
}
