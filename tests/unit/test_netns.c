/*
 * /run/netns in every mount state, with the real `ip netns add` and
 * `ip netns del` (iproute2, run by the test only) around moat's setup and
 * teardown, each case from a fresh machine's mount state: a private mount
 * namespace with a new /run, where /run/netns is a plain directory.
 * mountinfo is the witness: it lists mounts hidden below a later mount of
 * the directory, which `ip netns list` cannot see.
 */
#include "tests/unit/net_fixture.h"

/* An operator's `ip netns add` / `ip netns del` (the real iproute2). */
static bool
ip_netns(const char *verb, const char *ns)
{
	run("ip netns %s %s && echo ok", verb, ns);
	return has(out_buf, "ok");
}

/* Set up a sandbox network named `name` in slot `index`; NULL on error. */
static struct moat_net *
setup_named(const char *name, uint32_t index, const char *what)
{
	struct moat_net_config c = { .netns_fd = -1, .pool = POOL };
	struct moat_cause cause = { { 0 } };
	struct moat_net *n = NULL;
	int r;

	c.name = name;
	c.index = index;
	c.proxy_port = free_port();
	r = moat_net_setup(&c, &n, &cause);
	ok(r == 0, "%s: setup %s: %s", what, name, moat_cause_str(&cause, r));
	return r == 0 ? n : NULL;
}

/*
 * moat first, then `ip netns add`: on a plain /run/netns that is the
 * order in which moat's mount used to end up below ip's bind mount.
 * Teardown must leave nothing, and the same name must set up again.
 */
static void
test_order_moat_first(void)
{
	char name[32], other[32], hif[IFNAMSIZ] = "";
	struct moat_cause cause = { { 0 } };
	struct moat_net *n;

	if (!fresh_mount_state("moat first"))
		return;
	snprintf(name, sizeof(name), "t%dm1", (int)getpid());
	snprintf(other, sizeof(other), "moatop-%d", (int)getpid());
	if ((n = setup_named(name, 0, "moat first")) == NULL)
		return;
	snprintf(hif, sizeof(hif), "%s", moat_net_host_ifname(n));
	ok(netns_dir_mounted(), "moat first: /run/netns is now a mount, as "
	    "`ip netns add` makes it");
	ok(ip_netns("add", other), "moat first: ip netns add %s", other);
	like_str(run("ip netns list"), name, "moat first: ip netns still "
	    "lists moat-%s", name);
	moat_net_free(n);
	ok(!netns_left(name), "moat first: after free no file and no mount "
	    "of moat-%s in any layer", name);
	n = setup_named(name, 0, "moat first: again");
	moat_net_free(n);
	ok(ip_netns("del", other), "moat first: ip netns del %s", other);
	is_int(moat_net_purge(name, &cause), 0, "moat first: purge: %s",
	    cause.msg);
	ok(wait_gone(name, hif, 0), "moat first: nothing left");
}

/* `ip netns add` first, moat, then ip's netns goes before moat's. */
static void
test_order_ip_first(void)
{
	char name[32], other[32], hif[IFNAMSIZ] = "";
	struct moat_cause cause = { { 0 } };
	struct moat_net *n;

	if (!fresh_mount_state("ip first"))
		return;
	snprintf(name, sizeof(name), "t%di1", (int)getpid());
	snprintf(other, sizeof(other), "moatop-%d", (int)getpid());
	ok(ip_netns("add", other), "ip first: ip netns add %s", other);
	if ((n = setup_named(name, 0, "ip first")) == NULL)
		return;
	snprintf(hif, sizeof(hif), "%s", moat_net_host_ifname(n));
	ok(ip_netns("del", other), "ip first: ip netns del %s", other);
	moat_net_free(n);
	ok(!netns_left(name), "ip first: after free no file and no mount of "
	    "moat-%s", name);
	is_int(moat_net_purge(name, &cause), 0, "ip first: purge: %s",
	    cause.msg);
	ok(wait_gone(name, hif, 0), "ip first: nothing left");
}

/*
 * Something binds /run/netns over itself again after moat's setup (a
 * tool that does not check, or an older moat): our mount is now below
 * that layer, and a copy of it sits in the new one. Teardown still
 * removes both; a name a killed run left is purged through the layers
 * the path reaches.
 */
static void
test_order_overmount(void)
{
	char name[32], lost[32], hif[IFNAMSIZ] = "", lhif[IFNAMSIZ] = "";
	struct moat_cause cause = { { 0 } };
	struct moat_net *n, *l;

	if (!fresh_mount_state("overmount"))
		return;
	snprintf(name, sizeof(name), "t%do1", (int)getpid());
	snprintf(lost, sizeof(lost), "t%do2", (int)getpid());
	if ((n = setup_named(name, 0, "overmount")) == NULL)
		return;
	snprintf(hif, sizeof(hif), "%s", moat_net_host_ifname(n));
	if ((l = setup_named(lost, 1, "overmount")) != NULL)
		snprintf(lhif, sizeof(lhif), "%s", moat_net_host_ifname(l));
	/* A handle dropped without teardown: what a killed moatd leaves. */
	moat_net_release(l);
	ok(mount("/run/netns", "/run/netns", NULL, MS_BIND | MS_REC,
	    NULL) == 0, "overmount: bind /run/netns on itself again");
	moat_net_free(n);
	ok(!netns_left(name), "overmount: after free no file and no mount of "
	    "moat-%s in any layer", name);
	is_int(moat_net_purge(name, &cause), 0, "overmount: purge of a "
	    "freed name: %s", cause.msg);
	is_int(moat_net_purge(lost, &cause), 0, "overmount: purge of a "
	    "killed run's name: %s", cause.msg);
	ok(wait_gone(name, hif, 0) && wait_gone(lost, lhif, 0),
	    "overmount: nothing left of either");
}

int
main(void)
{
	if (!net_tests_ready())
		return done_testing();
	test_order_moat_first();
	test_order_ip_first();
	test_order_overmount();
	return done_testing();
}
