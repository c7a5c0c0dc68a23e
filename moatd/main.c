/*
 * moatd: the orchestrator. Reads the config, creates the sandboxes, forks
 * the proxy, listens for SSH (direct and relayed) and for the operator's
 * control socket, and is the single writer of the store.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "sshd/sshd.h"
#include "store/store.h"
#include "moatd/daemon.h"
#include "moatd/proxychan.h"
#include "moatd/state.h"

static void
usage(void)
{
	fprintf(stderr, "usage: moatd [-c CONFIG] [--check] [-v]\n"
			"  -c CONFIG  JSON config (default: the embedded dev "
			"config, docs/operator.md)\n"
			"  --check    validate the config and policies, then exit\n"
			"  -v         verbose logging\n");
}

static void
on_stop(struct moat_loop *l, int signo, void *arg)
{
	struct moatd *d = arg;

	if (d->cfg->live_restore)
		log_info("signal %d: stopping; sandboxes and sessions run on "
		    "(live restore)", signo);
	else
		log_info("signal %d: shutting down", signo);
	d->stopping = true;
	moat_loop_stop(l);
}

static void
on_hup(struct moat_loop *l, int signo, void *arg)
{
	(void)l;
	(void)signo;
	moatd_reload_policies(arg);
}

static void
on_child(struct moat_loop *l, int signo, void *arg)
{
	struct moatd *d = arg;
	int status;
	pid_t pid;

	(void)l;
	(void)signo;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == moatd_proxychan_pid(d->proxy)) {
			moatd_proxychan_reaped(d->proxy);
			if (d->stopping)
				continue;
			log_error("proxy exited (status %d); restarting", status);
			moatd_proxy_stop(d);
			struct moat_cause cause = { { 0 } };
			if (moatd_proxy_start(d, &cause) != 0)
				log_error("proxy restart failed: %s", cause.msg);
			continue;
		}
		moatd_child_exited(d, pid, status);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	struct moatd d = { 0 };
	const char *cfgpath = NULL;
	bool check = false;
	int ch, r, rc = 0;

	/* moatd re-executed as the SSH zygote (sshd/zygote.c): nothing else. */
	if (argc > 1 && strcmp(argv[1], MOAT_SSHD_ZYGOTE_ARG) == 0)
		return moat_sshd_zygote_main(argc, argv);
	moat_log_init("moatd", MOAT_LOG_INFO);
	while ((ch = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'v':
			moat_log_set_level(MOAT_LOG_DEBUG);
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 100;
		}
	}
	if (optind != argc) {
		usage();
		return 100;
	}
	if ((r = moatd_config_load(cfgpath, &d.cfg, &cause)) != 0) {
		fprintf(stderr, "moatd: %s\n", moat_cause_str(&cause, r));
		fprintf(stderr, "moatd: refusing to start\n");
		return 100;
	}
	if (check) {
		r = moatd_check_policies(d.cfg);
		moatd_config_free(d.cfg);
		return r == 0 ? 0 : 100;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "moatd: must run as root: it creates namespaces, "
				"cgroups and nftables rules for each sandbox.\n"
				"moatd: run `sudo make run`, or "
				"`sudo %s%s%s`\n", argv[0], cfgpath ? " -c " : "",
		    cfgpath ? cfgpath : "");
		moatd_config_free(d.cfg);
		return 100;
	}
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	rc = moatd_start(&d, &cause);
	if (rc != 0) {
		log_error("%s", moat_cause_str(&cause, rc));
		moatd_stop(&d);
		moatd_config_free(d.cfg);
		return rc == MOAT_ERR_INVALID ? 100 : 111;
	}
	moat_loop_signal(d.loop, SIGTERM, on_stop, &d);
	moat_loop_signal(d.loop, SIGINT, on_stop, &d);
	moat_loop_signal(d.loop, SIGHUP, on_hup, &d);
	moat_loop_signal(d.loop, SIGCHLD, on_child, &d);
	moatd_print_ready(&d);
	r = moat_loop_run(d.loop);
	moatd_stop(&d);
	moatd_config_free(d.cfg);
	return r == 0 ? 0 : 111;
}
