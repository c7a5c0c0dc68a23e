/*
 * A fast HTTP/1.1 upstream for benchmarks: for every request on a
 * connection it answers 200 with a body of N bytes (the request path
 * "/N", default 64), keep-alive unless the request says Connection:
 * close. PORT+1 is a raw TCP echo. A thread per
 * connection; the process ends after SECONDS.
 *
 *	bench_upstream ADDR PORT SECONDS
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char zeros[1 << 20];

static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[8192];
	size_t have = 0;

	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *end;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			char hdr[128];
			long long len = 64;
			char *p = strchr(buf, '/');
			bool close_after;

			/* RFC 9112 9.6: "close" ends the connection after the
			 * response (a forward proxy relays until it does). */
			*end = '\0';
			close_after = strcasestr(buf, "\nConnection: close") !=
			    NULL;
			*end = '\r';
			if (p != NULL)
				len = atoll(p + 1);
			if (len <= 0)
				len = 64;
			int hl = snprintf(hdr, sizeof(hdr),
			    "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n",
			    len);
			if (write(fd, hdr, (size_t)hl) != hl)
				goto out;
			while (len > 0) {
				size_t c = len > (long long)sizeof(zeros) ?
				    sizeof(zeros) : (size_t)len;
				ssize_t w = write(fd, zeros, c);
				if (w <= 0)
					goto out;
				len -= w;
			}
			if (close_after)
				goto out;
			end += 4;
			have -= (size_t)(end - buf);
			memmove(buf, end, have + 1);
		}
		if (have >= sizeof(buf) - 1)
			break;
	}
out:
	close(fd);
	return NULL;
}

static void *
echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			break;
	close(fd);
	return NULL;
}

static int
listen_on(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1, fd;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(fd, 1024) == -1) {
		perror("bench_upstream: bind");
		exit(111);
	}
	return fd;
}

struct acceptor {
	int fd;
	void *(*fn)(void *);
};

static void *
accept_loop(void *arg)
{
	struct acceptor *a = arg;
	int one = 1;

	for (;;) {
		pthread_t t;
		int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_create(&t, NULL, a->fn, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static struct acceptor http, ech;
	pthread_t t;

	if (argc != 4) {
		fprintf(stderr, "usage: bench_upstream ADDR PORT SECONDS\n");
		return 100;
	}
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)atoi(argv[3]));
	http.fd = listen_on(argv[1], atoi(argv[2]));
	http.fn = serve;
	ech.fd = listen_on(argv[1], atoi(argv[2]) + 1);
	ech.fn = echo;
	pthread_create(&t, NULL, accept_loop, &ech);
	accept_loop(&http);
	return 0;
}
