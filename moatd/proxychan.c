#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "proxy/proxy.h"
#include "sandbox/net.h"
#include "sandbox/sandbox.h"
#include "moatd/proxychan.h"

#define LINE_MAX_BYTES (1 << 20)

struct moatd_proxychan {
	struct moat_loop *loop;
	struct moatd_proxychan_cbs cbs;
	int fd;           /* our end of the socketpair, or -1 */
	pid_t pid;        /* the proxy process, or 0 once reaped */
	char *in;         /* a partial line */
	size_t inlen;
};

int
moatd_proxychan_send(struct moatd_proxychan *ch, json_t *o)
{
	char *s = NULL;
	int r = MOAT_OK;

	if (ch == NULL || ch->fd < 0 || o == NULL) {
		json_decref(o);
		return MOAT_ERR_NOTFOUND;
	}
	if ((s = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		return MOAT_ERR_NOMEM;
	}
	/*
	 * Blocking sends on a local socketpair keep messages in order; the
	 * proxy reads its end on every loop turn, and lines are small.
	 */
	if (moat_write_all(ch->fd, s, strlen(s)) != 0 ||
	    moat_write_all(ch->fd, "\n", 1) != 0) {
		log_warn_errno("write to the proxy");
		r = MOAT_ERR_SYSTEM;
	}
	free(s);
	json_decref(o);
	return r;
}

void
moatd_proxychan_sandbox(struct moatd_proxychan *ch, const char *name,
    struct moat_sandbox *sb)
{
	moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:i}",
	    "type", "sandbox", "name", name, "listen",
	    moat_sandbox_host_addr(sb), "port", (int)moat_sandbox_proxy_port(sb),
	    "netns_fd", moat_sandbox_netns_fd(sb), "procs",
	    moat_sandbox_procs_path(sb), "init_pid",
	    (int)moat_sandbox_init_pid(sb)));
}

void
moatd_proxychan_policy(struct moatd_proxychan *ch, const char *sandbox,
    int version, const char *json)
{
	moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:i, s:s}", "type",
	    "policy", "sandbox", sandbox, "version", version, "json", json));
}

int
moatd_proxychan_trust(struct moatd_proxychan *ch, const char *sandbox,
    const char *binary, const char *sha256)
{
	/*
	 * The proxy trusts exactly the hash the operator approved; a file
	 * swapped in after the review is still "binary changed". Without
	 * a hash the proxy only forgets (the next use is trusted).
	 */
	if (sha256 == NULL || sha256[0] == '\0')
		return moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:s}",
		    "type", "retrust", "sandbox", sandbox, "binary", binary));
	return moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:s, s:s}",
	    "type", "retrust", "sandbox", sandbox, "binary", binary,
	    "sha256", sha256));
}

void
moatd_proxychan_bypass(struct moatd_proxychan *ch, const char *sandbox,
    const struct moat_nflog_pkt *p)
{
	moatd_proxychan_send(ch, json_pack(
	    "{s:s, s:s, s:i, s:i, s:s, s:s, s:i, s:i, s:i}", "type", "bypass",
	    "sandbox", sandbox, "family", p->family == AF_INET6 ? 6 : 4,
	    "proto", p->l4proto,
	    "src", p->src, "dst", p->dst, "sport", (int)p->sport, "dport",
	    (int)p->dport, "uid", p->uid));
}

static void
handle_line(struct moatd_proxychan *ch, const char *line, size_t len)
{
	struct moat_denial_event ev;
	struct moat_cause cause = { { 0 } };

	/* Denials are the hot path: decode them without a second parse. */
	static const char denial[] = "{\"type\":\"denial\"";

	if (len < sizeof(denial) - 1 ||
	    strncmp(line, denial, sizeof(denial) - 1) != 0) {
		json_t *o = json_loadb(line, len, 0, NULL);
		if (o != NULL && ch->cbs.message != NULL)
			ch->cbs.message(ch->cbs.arg, o);
		json_decref(o);
		return;
	}
	if (moat_denial_event_decode(line, len, &ev, &cause) != 0) {
		log_warn("bad event line from the proxy: %s", cause.msg);
		return;
	}
	if (ch->cbs.event != NULL)
		ch->cbs.event(ch->cbs.arg, &ev);
}

static void
readable(struct moat_loop *l, int fd, unsigned events, void *arg)
{
	struct moatd_proxychan *ch = arg;
	char buf[65536];
	ssize_t n;

	(void)events;
	/* Bounded per turn so one busy proxy cannot starve the loop. */
	for (int turns = 0; turns < 64; turns++) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			moat_loop_del_fd(l, fd);
			moat_close(fd);
			ch->fd = -1;
			return;
		}
		if (ch->inlen + (size_t)n > LINE_MAX_BYTES) {
			log_warn("proxy line over %d bytes dropped",
			    LINE_MAX_BYTES);
			ch->inlen = 0;
			continue;
		}
		char *nb = realloc(ch->in, ch->inlen + (size_t)n);
		if (nb == NULL)
			return;
		ch->in = nb;
		memcpy(ch->in + ch->inlen, buf, (size_t)n);
		ch->inlen += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < ch->inlen; i++) {
			if (ch->in[i] != '\n')
				continue;
			if (i > start)
				handle_line(ch, ch->in + start, i - start);
			start = i + 1;
		}
		memmove(ch->in, ch->in + start, ch->inlen - start);
		ch->inlen -= start;
	}
}

int
moatd_proxychan_start(struct moat_loop *l, const struct moat_proxy_config *pc,
    const int *close_fds, size_t nclose, const struct moatd_proxychan_cbs *cbs,
    struct moatd_proxychan **out, struct moat_cause *cause)
{
	struct moatd_proxychan *ch = NULL;
	int sv[2];
	pid_t pid;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return MOAT_ERR_NOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		moat_cause_errno(cause, "socketpair for the proxy");
		free(ch);
		return MOAT_ERR_SYSTEM;
	}
	if ((pid = fork()) == -1) {
		moat_cause_errno(cause, "fork the proxy");
		close(sv[0]);
		close(sv[1]);
		free(ch);
		return MOAT_ERR_SYSTEM;
	}
	if (pid == 0) {
		sigset_t none;

		close(sv[0]);
		for (size_t i = 0; i < nclose; i++)
			moat_close(close_fds[i]);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_NAME, "moat-proxy");
		/* Die with the parent rather than linger as an orphan. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* As talkative as the parent (moat run: warnings only). */
		moat_log_init("proxy", moat_log_enabled(MOAT_LOG_INFO) ?
		    MOAT_LOG_INFO : MOAT_LOG_WARN);
		_exit(moat_proxy_process_main(sv[1], pc) == 0 ? 0 : 111);
	}
	close(sv[1]);
	ch->loop = l;
	ch->cbs = *cbs;
	ch->fd = sv[0];
	ch->pid = pid;
	if (moat_loop_add_fd(l, ch->fd, MOAT_EV_READ, readable, ch) != 0) {
		moat_cause_set(cause, "cannot watch the proxy channel");
		moatd_proxychan_stop(ch);
		return MOAT_ERR_SYSTEM;
	}
	*out = ch;
	return MOAT_OK;
}

pid_t
moatd_proxychan_pid(const struct moatd_proxychan *ch)
{
	return ch != NULL ? ch->pid : 0;
}

void
moatd_proxychan_reaped(struct moatd_proxychan *ch)
{
	if (ch != NULL)
		ch->pid = 0;
}

void
moatd_proxychan_stop(struct moatd_proxychan *ch)
{
	if (ch == NULL)
		return;
	if (ch->fd >= 0) {
		moat_loop_del_fd(ch->loop, ch->fd);
		moat_close(ch->fd);
	}
	if (ch->pid > 0) {
		kill(ch->pid, SIGTERM);
		waitpid(ch->pid, NULL, 0);
	}
	free(ch->in);
	free(ch);
}
