"""Identity section of make bench: what naming the caller costs a CONNECT.

moatd serves two sandboxes, "loaded" and "idle", once with kernel
attribution (proxy.identity "bpf") and once with the /proc scan
("proc"). Inside them, over SSH, bench_client times CONNECT + one echo
round trip through the proxy to the bench upstream, as a child of
bench_fds (tests/helpers/bench_fds.c), so that the process tree is the
same in every case:

  - empty:   bench_fds 1 1, in "idle";
  - loaded:  bench_fds 101 10000: next to 101 processes holding 10,000
             open fds each, in "loaded";
  - second:  in "idle", while "loaded" holds those fds and connects in a
             loop; compared with "idle" right before and after.

Each figure is a median minus a direct connection's (from the host),
next to tinyproxy's on the same path: its client in the upstream's netns
reaches it over the veth on the host side, as a sandbox reaches moat's
proxy (the proxy section's tinyproxy client is on loopback, a shorter
path than any sandbox's). The peer's and the direct client run in a cpu
cgroup shaped like a sandbox's (run.py, peer_prefix), so that on a
loaded machine each client gets the same share of the CPU. The machine
is shared, so the direct, tinyproxy and moat samples are taken in
alternating rounds and the median of the rounds is reported.
"""
import json, os, signal, statistics, subprocess, time

PROCS, FDS = 101, 10000
ROUNDS, N = 5, 100


def run(B, TMP, H, UP_NS, UP_ADDR, UP_HOST, row, start, sh, free_port, wait_port, client,
        tinyproxy, log, peer=()):
    tp = free_port()
    tinyproxy(tp, listen=UP_HOST, allow=UP_ADDR)
    key = os.path.join(TMP, "id_ident")
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    pub = open(key + ".pub").read().strip()
    # The helpers run from the workspace (/sandbox): a moatd session does
    # not see the build tree.
    pol = os.path.join(TMP, "ident-policy.json")
    with open(pol, "w") as f:
        json.dump({"version": 1, "network_policies": {"bench": {
                       "name": "bench", "endpoints": [{"host": UP_ADDR, "ports": [80, 81]}],
                       "binaries": [{"path": "/sandbox/bench_client"}]}}}, f)

    def direct():
        return float(client(["direct", "-", 0, UP_ADDR, 81, N]).split()[1])

    def tiny():
        # Into the cgroup first: `ip netns exec` mounts a sysfs of its own.
        r = sh(list(peer) + ["ip", "netns", "exec", UP_NS, os.path.join(H, "bench_client"),
                "connect", UP_HOST, str(tp), UP_ADDR, "81", str(N)], timeout=600)
        return float(r.stdout.split()[1])

    tiny_added = []
    for mode in ("bpf", "proc"):
        log(f"-- identity {mode}")
        r = _mode(B, TMP, H, UP_ADDR, mode, key, pub, pol, start, sh, free_port, wait_port,
                  direct, tiny, log)
        tiny_added += r["tiny"]
        empty = statistics.median(r["empty"])
        row("identity", f"CONNECT setup added, empty sandbox, us ({mode})", empty,
            "tinyproxy", statistics.median(r["tiny"]), "us",
            "<= tinyproxy" if mode == "bpf" else "", higher_better=False)
        row("identity", f"... {PROCS} procs x {FDS} fds in the sandbox, us ({mode})",
            statistics.median(r["loaded"]), "empty", empty, "us",
            "<= 1.2x empty" if mode == "bpf" else "", higher_better=False)
        row("identity", f"2nd sandbox while the 1st is loaded, us ({mode})", r["second"],
            "idle", r["idle"], "us", "<= idle + 5 ms" if mode == "bpf" else "",
            higher_better=False)


def _mode(B, TMP, H, UP_ADDR, mode, key, pub, pol, start, sh, free_port, wait_port,
          direct, tiny, log):
    mp, pp = free_port(), free_port()
    sbs = []
    for name in ("loaded", "idle"):
        ws = os.path.join(TMP, f"ws-{mode}-{name}")
        os.makedirs(ws, exist_ok=True)
        for h in ("bench_client", "bench_fds"):
            sh(["cp", os.path.join(H, h), ws])
        sbs.append({"name": f"id{mode}{name}", "workspace": ws, "policy": pol,
                    "authorized_keys": [pub]})
    cfg = {"state_dir": f"{TMP}/var-{mode}", "listen": [{"addr": "127.0.0.1", "port": mp}],
           "proxy": {"port": pp, "identity": mode}, "sandboxes": sbs}
    cpath = os.path.join(TMP, f"moatd-{mode}.json")
    with open(cpath, "w") as f:
        json.dump(cfg, f)
    md = start([os.path.join(B, "moatd"), "-c", cpath])
    try:
        if not wait_port("127.0.0.1", mp, 30):
            raise RuntimeError(f"moatd ({mode}) did not start")
        sc = os.path.join(TMP, f"ssh_config-{mode}")
        with open(sc, "w") as f:
            for s in sbs:
                f.write(f"Host {s['name']}\n  HostName 127.0.0.1\n  Port {mp}\n  User {s['name']}\n"
                        f"  IdentityFile {key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
                        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n")
        ssh = ["ssh", "-F", sc]
        loaded, idle = sbs[0]["name"], sbs[1]["name"]

        def moat(host, procs, fds, n):
            r = sh(ssh + [host, "/sandbox/bench_fds", str(procs), str(fds), "--",
                          "/sandbox/bench_client", "connect", "env", "0", UP_ADDR, "81", str(n)],
                   check=False, timeout=900)
            if r.returncode != 0:
                den = sh([os.path.join(B, "moat"), "denials", "--json", "--store",
                          f"{TMP}/var-{mode}/moat.db"], check=False).stdout.strip()
                raise RuntimeError(f"{host} ({mode}): {r.stderr.strip()[-200:]} "
                                   f"{den.splitlines()[-1][-300:] if den else ''}")
            return float(r.stdout.split()[1])

        moat(idle, 1, 1, 10)  # hash the helpers once
        res = {"tiny": [], "empty": [], "loaded": []}
        # The /proc scan of a million fds takes seconds per connection.
        rounds, n_loaded = (ROUNDS, N) if mode == "bpf" else (1, 2)
        for _ in range(rounds):
            d = direct()
            res["tiny"].append(tiny() - d)
            res["empty"].append(moat(idle, 1, 1, N) - d)
            res["loaded"].append(moat(loaded, PROCS, FDS, n_loaded) - d)
        # The loaded sandbox keeps connecting while the idle one is timed.
        before = moat(idle, 1, 1, N)
        err = open(os.path.join(TMP, f"hoard-{mode}.err"), "w+")
        bg = subprocess.Popen(ssh + [loaded, "/sandbox/bench_fds", str(PROCS), str(FDS), "--",
                                     "/sandbox/bench_client", "connect", "env", "0", UP_ADDR,
                                     "81", "1000000"],
                              stdout=subprocess.DEVNULL, stderr=err)
        try:
            end = time.time() + 300
            while time.time() < end:
                err.seek(0)
                if "ready" in err.read():
                    break
                if bg.poll() is not None:
                    raise RuntimeError(f"the load in {loaded} ({mode}) ended early")
                time.sleep(0.2)
            time.sleep(1)
            second = moat(idle, 1, 1, N)
        finally:
            bg.send_signal(signal.SIGTERM)
            bg.wait(30)
        after = moat(idle, 1, 1, N)
        d = direct()
        res["second"] = second - d
        res["idle"] = (before + after) / 2 - d
        return res
    finally:
        md.send_signal(signal.SIGTERM)
        md.wait(60)
