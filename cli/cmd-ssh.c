/*
 * `moat ssh-config NAME` prints an ssh_config Host block that reaches a
 * sandbox through `moat ssh-proxy NAME`, which connects to moatd's relay
 * socket, sends the signed preface, waits for "OK" and then carries the
 * SSH byte stream between stdin/stdout and the socket (half-closing
 * properly so the client never loses the final exit status).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sshd/relay.h"
#include "store/store.h"
#include "cli/cli.h"

static const char *
state_path(const char *file, char *buf, size_t len)
{
	const char *dir = getenv("MOAT_STATE");

	snprintf(buf, len, "%s/%s", dir && *dir ? dir : "var", file);
	return buf;
}

struct find_sb {
	const char *name;
	bool found;
	char known[256];
};

static int
find_sb_cb(const struct moat_store_sandbox *sb, void *arg)
{
	struct find_sb *f = arg;
	size_t n = strlen(f->known);

	if (strcmp(sb->name, f->name) == 0)
		f->found = true;
	snprintf(f->known + n, sizeof(f->known) - n, "%s%s", n ? ", " : "",
	    sb->name);
	return 0;
}

/* Is there such a sandbox? true when the store cannot tell. */
static bool
sandbox_known(const char *name)
{
	struct find_sb f = { name, false, "" };
	struct moat_store *s = NULL;

	if (moat_store_open(moat_cli_store_path(), MOAT_STORE_RDONLY, &s,
	    NULL) != 0) {
		fprintf(stderr, "moat ssh-config: cannot check that sandbox "
				"'%s' exists (store %s unreadable)\n", name,
		    moat_cli_store_path());
		return true;
	}
	moat_store_sandbox_list(s, find_sb_cb, &f, NULL);
	moat_store_close(s);
	if (!f.found)
		fprintf(stderr, "moat ssh-config: no sandbox named '%s' (known: "
				"%s)\n", name, f.known[0] ? f.known : "none");
	return f.found;
}

static int
ssh_config_exec(int argc, char **argv)
{
	char self[PATH_MAX], cwd[PATH_MAX], sock[PATH_MAX];
	ssize_t n;

	if (argc != 2)
		return moat_cli_usage(&moat_cmd_ssh_config);
	if (!sandbox_known(argv[1]))
		return MOAT_EXIT_NO;
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
		snprintf(self, sizeof(self), "moat");
	else
		self[n] = '\0';
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		snprintf(cwd, sizeof(cwd), ".");
	state_path("", sock, sizeof(sock));
	printf("Host %s\n"
	       "  User %s\n"
	       "  ProxyCommand env MOAT_STATE=%s%s%s %s ssh-proxy %s\n"
	       "  UserKnownHostsFile ~/.ssh/known_hosts.moat\n"
	       "  ServerAliveInterval 30\n",
	    argv[1], argv[1], sock[0] == '/' ? "" : cwd,
	    sock[0] == '/' ? "" : "/", sock, self, argv[1]);
	return 0;
}

/* Copy between stdin/stdout and the socket until both directions end. */
static int
pump(int s)
{
	struct pollfd p[2];
	bool in_open = true, out_open = true;
	char buf[65536];

	while (out_open) {
		int np = 0;
		p[np++] = (struct pollfd){ s, POLLIN, 0 };
		if (in_open)
			p[np++] = (struct pollfd){ STDIN_FILENO, POLLIN, 0 };
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return MOAT_EXIT_SYSTEM;
		}
		if (p[0].revents) {
			ssize_t r = read(s, buf, sizeof(buf));
			if (r <= 0)
				out_open = false;
			else if (moat_write_all(STDOUT_FILENO, buf, (size_t)r))
				return MOAT_EXIT_SYSTEM;
		}
		if (np > 1 && p[1].revents) {
			ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
			if (r <= 0) {
				/* Half-close: the server still sends the status. */
				shutdown(s, SHUT_WR);
				in_open = false;
			} else if (moat_write_all(s, buf, (size_t)r)) {
				return MOAT_EXIT_SYSTEM;
			}
		}
	}
	return 0;
}

static int
ssh_proxy_exec(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char path[PATH_MAX], line[MOAT_RELAY_LINE_MAX], reply[64];
	char *secret = NULL;
	struct moat_cause cause = { { 0 } };
	size_t got = 0;
	int s = -1, r, n;

	if (argc != 2)
		return moat_cli_usage(&moat_cmd_ssh_proxy);
	if ((r = moat_read_file(state_path("relay.secret", path, sizeof(path)),
		 4096, &secret, NULL, &cause)) != 0) {
		fprintf(stderr, "moat ssh-proxy: %s (the relay is root-only)\n",
		    cause.msg);
		return MOAT_EXIT_SYSTEM;
	}
	secret[strcspn(secret, "\r\n")] = '\0';
	n = moat_relay_preface_make(argv[1], secret, line, sizeof(line));
	explicit_bzero(secret, strlen(secret));
	free(secret);
	if (n < 0) {
		fprintf(stderr, "moat ssh-proxy: bad sandbox name '%s'\n",
		    argv[1]);
		return MOAT_EXIT_USAGE;
	}
	state_path("relay.sock", sun.sun_path, sizeof(sun.sun_path));
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "moat ssh-proxy: cannot reach %s: %s (is moatd "
				"running?)\n", sun.sun_path, strerror(errno));
		return MOAT_EXIT_SYSTEM;
	}
	if (moat_write_all(s, line, (size_t)n) != 0)
		return MOAT_EXIT_SYSTEM;
	/* Read the answer byte by byte: nothing of SSH may be consumed. */
	while (got < sizeof(reply) - 1) {
		ssize_t k = read(s, reply + got, 1);
		if (k <= 0)
			break;
		if (reply[got++] == '\n')
			break;
	}
	reply[got] = '\0';
	if (strcmp(reply, "OK\n") != 0) {
		reply[strcspn(reply, "\n")] = '\0';
		fprintf(stderr, "moat ssh-proxy: relay refused: %s\n",
		    got ? reply : "(connection closed)");
		return MOAT_EXIT_NO;
	}
	r = pump(s);
	close(s);
	return r;
}

const struct moat_cli_cmd moat_cmd_ssh_config = {
	"ssh-config",
	"ssh-config NAME",
	"print an ~/.ssh/config Host block for a sandbox",
	ssh_config_exec,
};

const struct moat_cli_cmd moat_cmd_ssh_proxy = {
	"ssh-proxy",
	"ssh-proxy NAME",
	"ProxyCommand: reach a sandbox through moatd's relay socket",
	ssh_proxy_exec,
};
