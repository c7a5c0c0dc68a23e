#!/usr/bin/python3
"""make bench: moat side by side with its peers, in one run.

Every number is measured now, on this machine, next to the peer it is
compared with (OpenSSH sshd, dropbear, tinyproxy, squid, bubblewrap,
direct). Traffic goes only to loopback and to a network namespace this
script creates; everything it starts is stopped and removed at the end.
Benchmarks are not tests: they print figures, and a section that cannot
run prints why.
"""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/rel")
H = os.path.join(B, "tests", "helpers")
MOAT = os.path.join(B, "moat")
MOATD = os.path.join(B, "moatd")
TMP = tempfile.mkdtemp(prefix="moat-bench.")
os.chmod(TMP, 0o755)
procs, cleanups, rows = [], [], []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check,
                          capture_output=True, text=True, **kw)


def start(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(TMP, "bg.log"), "a"), **kw)
    procs.append(p)
    return p


def row(section, metric, moat, peer_name, peer, unit, goal, higher_better=True):
    rows.append((section, metric, moat, peer_name, peer, unit, goal, higher_better))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(addr, port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection((addr, port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def hyperfine(cmds, runs=30, rounds=1):
    """Median ms of each command; with rounds > 1, hyperfine runs that
    many times (each command `runs` times per round, in turn) and the
    median of the rounds' medians is kept: on a shared machine, load that
    comes and goes then weighs on every command alike."""
    out = os.path.join(TMP, "hf.json")
    meds = [[] for _ in cmds]
    for _ in range(rounds):
        sh(["hyperfine", "-N", "--warmup", "3", "--runs", str(runs),
            "--export-json", out] + cmds)
        with open(out) as f:
            for i, r in enumerate(json.load(f)["results"]):
                meds[i].append(r["median"] * 1000)
    return [statistics.median(m) for m in meds]


# ---------------------------------------------------------------- sections

def bench_policy():
    presets = os.path.join(TOP, "policies", "presets")
    files = [os.path.join(presets, f) for f in os.listdir(presets) if f.endswith(".json")]
    big = max(files, key=os.path.getsize)
    out = sh([os.path.join(H, "bench_decide"), big]).stdout.strip()
    log(out)
    rate = float(out.split("decisions/s")[0].split()[-1].rstrip("M")) * (1e6 if "M decisions" in out else 1)
    row("policy", f"decisions/s ({os.path.basename(big)})", rate, "goal", 1e6, "/s", ">= 1M/s")


UP_NS = f"mb{os.getpid()}"
UP_ADDR, UP_HOST = "10.251.7.2", "10.251.7.1"


def upstream():
    if UP_NS in " ".join(cleanups):
        return  # one per run: the proxy and identity sections share it
    hv, sv = f"mbh{os.getpid()}"[:15], f"mbs{os.getpid()}"[:15]
    sh(f"ip netns add {UP_NS}")
    cleanups.append(f"ip netns del {UP_NS}")
    sh(f"ip link add {hv} type veth peer name {sv} netns {UP_NS}")
    cleanups.append(f"ip link del {hv}")
    sh(f"ip addr add {UP_HOST}/30 dev {hv} && ip link set {hv} up")
    sh(f"ip -n {UP_NS} addr add {UP_ADDR}/30 dev {sv} && ip -n {UP_NS} link set {sv} up "
       f"&& ip -n {UP_NS} link set lo up")
    start(["ip", "netns", "exec", UP_NS, os.path.join(H, "bench_upstream"), UP_ADDR, "80", "900"])
    if not wait_port(UP_ADDR, 80):
        raise RuntimeError("upstream did not start")


def tinyproxy(port, listen="127.0.0.1", allow="127.0.0.1"):
    conf = os.path.join(TMP, f"tinyproxy-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"Port {port}\nListen {listen}\nTimeout 600\nAllow {allow}\n"
                "MaxClients 2000\nConnectPort 80\nConnectPort 81\nLogLevel Critical\n"
                f"PidFile \"{TMP}/tinyproxy-{port}.pid\"\nLogFile \"{TMP}/tinyproxy.log\"\n")
    p = start(["tinyproxy", "-d", "-c", conf])
    wait_port(listen, port)
    return p


def squid(port):
    conf = os.path.join(TMP, "squid.conf")
    with open(conf, "w") as f:
        f.write(f"http_port 127.0.0.1:{port}\nacl SSL_ports port 80 81\nacl Safe_ports port 80 81\n"
                "http_access allow all\ncache deny all\ncache_mem 8 MB\nmemory_pools off\n"
                f"pid_filename {TMP}/squid.pid\naccess_log none\ncache_log {TMP}/squid.log\n"
                f"coredump_dir {TMP}\nworkers 1\nvia on\nforwarded_for delete\n"
                "shutdown_lifetime 1 seconds\n")
    os.chmod(TMP, 0o777)
    p = start(["squid", "-N", "-f", conf])
    wait_port("127.0.0.1", port, 30)
    return p


_peer = None


def peer_prefix():
    """A command prefix that runs a peer's client in a cpu cgroup shaped
    like a sandbox's (a group of its own in a group of its own, default
    weights). A sandbox's threads share one group's CPU weight: on a
    loaded machine, a peer's client in the root group got many times the
    CPU of moat's client in its sandbox, and the rows compared clients,
    not proxies. [] when there is no cpu controller to use."""
    global _peer
    if _peer is not None:
        return _peer
    _peer = []
    for base in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup"):
        if not os.path.exists(os.path.join(base, "cpu.shares" if base.endswith("cpu")
                                           else "cgroup.subtree_control")):
            continue
        if not base.endswith("cpu"):
            with open(os.path.join(base, "cgroup.subtree_control")) as f:
                if "cpu" not in f.read().split():
                    continue
        top = os.path.join(base, f"moat-bench-{os.getpid()}")
        leaf = os.path.join(top, "peer")
        try:
            os.makedirs(leaf)
        except OSError as e:
            log(f"peer cgroup: {e}")
            continue
        cleanups.append(f"rmdir {top}")
        cleanups.append(f"rmdir {leaf}")
        _peer = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(leaf, "cgroup.procs")]
        break
    log(f"peer clients run in {_peer[3] if _peer else 'the root cpu cgroup (none usable)'}")
    return _peer


def client(args, inside=None):
    cmd = [os.path.join(H, "bench_client")] + [str(a) for a in args]
    if inside:
        cmd = inside + ["--"] + cmd
    else:
        cmd = peer_prefix() + cmd
    r = sh(cmd, check=False, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()[-300:]}")
    return r.stdout


def moat_proxy_policy():
    # The sandbox sees only the system and the paths a policy names.
    pol = {"version": 1, "filesystem_policy": {"read_only": [H]},
           "network_policies": {"bench": {
        "name": "bench",
        "endpoints": [{"host": UP_ADDR, "ports": [80, 81]}],
        "binaries": [{"path": os.path.join(H, "bench_client")}]}}}
    path = os.path.join(TMP, "bench-policy.json")
    with open(path, "w") as f:
        json.dump(pol, f)
    return path


def bench_proxy():
    upstream()
    tp, sq = free_port(), free_port()
    t = tinyproxy(tp)
    s = squid(sq)
    pol = moat_proxy_policy()
    inside = [MOAT, "run", "-p", pol, "--name", f"bench{os.getpid() % 10000}"]
    res = {}
    GB = 1 << 30
    # The moat client runs in a sandbox: it reaches the proxy at the host
    # side of its veth, which `moat run` puts in HTTP_PROXY.
    def moat(args):
        return client(args, inside=inside)
    peers = {"direct": ("-", 0), "tinyproxy": ("127.0.0.1", tp), "squid": ("127.0.0.1", sq)}
    for name, (addr, port) in peers.items():
        res[name, "bulk"] = float(client(["bulk", addr, port, UP_ADDR, 80, GB]).split()[1])
    res["moat", "bulk"] = float(moat(["bulk", "env", "0", UP_ADDR, 80, GB]).split()[1])
    for name in ("tinyproxy", "squid", "moat"):
        row("proxy", f"CONNECT bulk 1 GiB MB/s ({name} vs direct)", res[name, "bulk"], "direct",
            res["direct", "bulk"], "MB/s", ">= 0.9 of direct" if name == "moat" else "")
    lat = {}
    lat["direct"] = float(client(["direct", "-", 0, UP_ADDR, 81, 300]).split()[1])
    for name in ("tinyproxy", "squid"):
        a, p = peers[name]
        lat[name] = float(client(["connect", a, p, UP_ADDR, 81, 300]).split()[1])
    lat["moat"] = float(moat(["connect", "env", "0", UP_ADDR, 81, 300]).split()[1])
    for name in ("tinyproxy", "squid", "moat"):
        row("proxy", f"CONNECT setup added over direct, median us ({name})",
            lat[name] - lat["direct"], "tinyproxy", lat["tinyproxy"] - lat["direct"], "us",
            "<= tinyproxy" if name == "moat" else "", higher_better=False)
    # Forward GETs: rounds in turn (the machine is shared), medians; at
    # 16 clients also the proxy process's CPU time per request.
    rps, cpu = {}, {}
    gets = {"tinyproxy": (peer_prefix() + [os.path.join(H, "bench_client"), "get", "127.0.0.1",
                                           str(tp)], lambda pp: tree(t.pid)),
            "squid": (peer_prefix() + [os.path.join(H, "bench_client"), "get", "127.0.0.1",
                                       str(sq)], lambda pp: tree(s.pid)),
            "moat": (inside + ["--", os.path.join(H, "bench_client"), "get", "env", "0"],
                     lambda pp: [x for x in tree(pp.pid) if comm(x) == "moat-proxy"])}
    for _ in range(GET_ROUNDS):
        for c in (1, 16):
            for name, (cmd, pids) in gets.items():
                r, u = get_run(cmd + [UP_ADDR, "80", "3", str(c)], pids)
                rps.setdefault((name, c), []).append(r)
                if c == 16:
                    cpu.setdefault(name, []).append(u)
    for c in (1, 16):
        for name in ("tinyproxy", "moat"):
            row("proxy", f"forward GET req/s, {c} client(s) ({name} vs squid)",
                statistics.median(rps[name, c]), "squid", statistics.median(rps["squid", c]),
                "/s", ">= 1.5x squid at 16" if name == "moat" and c == 16 else "")
    for name in ("tinyproxy", "moat"):
        row("proxy", f"forward GET, proxy CPU us per request, 16 clients ({name})",
            statistics.median(cpu[name]), "squid", statistics.median(cpu["squid"]), "us",
            "<= 0.67x squid" if name == "moat" else "", higher_better=False)
    # Memory per idle tunnel: PSS of the proxy's processes before and
    # while N tunnels are held open.
    n = 200
    for name, pid_of in (("tinyproxy", lambda: tree(t.pid)), ("squid", lambda: tree(s.pid))):
        a, p = peers[name]
        c = subprocess.Popen([os.path.join(H, "bench_client"), "idle", a, str(p), UP_ADDR, "81", str(n), "4"],
                             stdout=subprocess.PIPE, text=True)
        c.stdout.readline()
        before = pss_kb(pid_of())
        c.stdout.readline()
        res[name, "idle"] = (pss_kb(pid_of()) - before) / n
        c.wait()
    res["moat", "idle"] = moat_idle(inside, n)
    for name in ("squid", "moat"):
        row("proxy", f"memory per idle tunnel, KB PSS ({name})", res[name, "idle"], "tinyproxy",
            res["tinyproxy", "idle"], "KB", "<= tinyproxy" if name == "moat" else "", higher_better=False)


GET_ROUNDS = 3


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += int(v[11]) + int(v[12])
        except (OSError, ValueError, IndexError):
            pass
    return total


def get_run(cmd, pids_of):
    """bench_client get (3 s): its requests/s, and the proxy's CPU time
    per request in us, from the proxy processes' CPU over the steady
    middle of the run (1 s to 2.5 s) at the run's mean rate."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    pids = pids_of(p)
    c0, t0 = cpu_ticks(pids), time.time()
    time.sleep(1.5)
    c1, t1 = cpu_ticks(pids), time.time()
    out, err = p.communicate(timeout=600)
    if p.returncode != 0 or not out.startswith("rps"):
        raise RuntimeError(f"{' '.join(cmd)}: {err.strip()[-300:]}")
    rate = float(out.split()[1])
    hz = os.sysconf("SC_CLK_TCK")
    us = (c1 - c0) / hz / (t1 - t0) / rate * 1e6 if rate > 0 and pids else float("nan")
    return rate, us


def moat_idle(inside, n):
    """PSS of moat's proxy process (named moat-proxy) per idle tunnel."""
    c = subprocess.Popen(inside + ["--", os.path.join(H, "bench_client"), "idle",
                                   "env", "0", UP_ADDR, "81", str(n), "4"],
                         stdout=subprocess.PIPE, text=True)
    c.stdout.readline()
    proxy = [p for p in tree(c.pid) if comm(p) == "moat-proxy"]
    before = pss_kb(proxy)
    c.stdout.readline()
    after = pss_kb(proxy)
    c.wait()
    if not proxy:
        raise RuntimeError("no moat-proxy process found under moat run")
    return (after - before) / n


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def bench_identity():
    upstream()
    __import__("bench_identity").run(B, TMP, H, UP_NS, UP_ADDR, UP_HOST, row, start, sh,
                                      free_port, wait_port, client, tinyproxy, log,
                                      peer_prefix())


def bench_sandbox():
    bw = shutil.which("bwrap")
    meds = hyperfine([f"{MOAT} run -- /bin/true",
                      f"{bw} --unshare-all --ro-bind / / --dev /dev --proc /proc /bin/true",
                      "unshare -n /bin/true",
                      f"env MOAT_IDENTITY=proc {MOAT} run -- /bin/true"], runs=15, rounds=3)
    row("sandbox", "`moat run true` ms (vs bwrap --unshare-all)", meds[0], "bwrap", meds[1], "ms",
        "< 15 ms, <= bwrap", higher_better=False)
    # What loading and attaching the caller attribution programs adds.
    row("sandbox", "`moat run true` ms, BPF attribution vs /proc scan", meds[0],
        "proc", meds[3], "ms", "<= 1.1x proc", higher_better=False)
    row("sandbox", "`unshare -n true` ms (reference)", meds[2], "bwrap", meds[1], "ms", "", higher_better=False)


def bench_store():
    """Inserts/s into the store, and `moat denials --top --since 1h` over
    one million stored denials: the library call, and the real command."""
    env = dict(os.environ, MOAT_BENCH_KEEP="1")
    out = sh([os.path.join(H, "bench_store"), "1000000", "1000", TMP], timeout=900, env=env).stdout
    log(out.strip())
    kept = {}
    for line in out.splitlines():
        label = line.split(":")[0].replace("store ", "")
        if "events/s" in line:
            rate = float(line.split("batches of 1000: ")[1].split()[0])
            row("store", f"denials inserted/s, 1M rows ({label})", rate, "goal", 50000, "/s",
                ">= 50000/s")
        elif "median" in line:
            ms = float(line.split("median ")[1].split()[0])
            row("store", f"top --since 1h, library, 1M rows ({label})", ms, "goal", 100, "ms",
                "< 100 ms", higher_better=False)
        elif "kept" in line:
            kept[label] = line.split("kept ")[1].strip()
    for label, path in kept.items():
        times = []
        for _ in range(9):
            t0 = time.time()
            sh([MOAT, "denials", "--top", "--since", "1h", "--store", path],
               env=dict(os.environ, MOAT_STORE=path))
            times.append((time.time() - t0) * 1000)
        row("store", f"`moat denials --top --since 1h`, 1M rows ({label})",
            statistics.median(times), "goal", 100, "ms", "< 100 ms", higher_better=False)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except OSError:
                pass


def bench_events():
    out = sh([os.path.join(H, "bench_events")], timeout=900).stdout
    log(out.strip())
    for line in out.splitlines():
        if "events/s" in line and "lost" in line:
            rate = float(line.split(": ")[1].split()[0])
            lost = int(line.split("lost ")[1].split()[0])
            row("events", f"denial events/s proxy->aggregator->store (lost {lost})", rate,
                "goal", 50000, "/s", ">= 50000/s, nothing lost")


SECTIONS = [("policy", bench_policy), ("sandbox", bench_sandbox), ("proxy", bench_proxy),
            ("ssh", lambda: __import__("bench_ssh").run(B, TMP, row, start, sh, tree, pss_kb,
                                                         free_port, wait_port, hyperfine, log)),
            ("identity", bench_identity),
            ("tls", lambda: __import__("bench_tls").run(B, TMP, row, start, sh, tree, pss_kb,
                                                         free_port, wait_port, log)),
            ("store", bench_store), ("events", bench_events),
            ("restore", lambda: __import__("bench_restore").run(B, TMP, row, sh, free_port,
                                                                 log))]


def main():
    sys.path.insert(0, os.path.dirname(__file__))
    want = os.environ.get("MOAT_BENCH", "")
    for name, fn in SECTIONS:
        if want and name not in want.split(","):
            continue
        log(f"== {name}")
        try:
            fn()
        except Exception as e:  # a section that cannot run says why
            rows.append((name, f"n/a: {e}"[:150], None, "", None, "", "", True))
    print("\n%-8s %-58s %12s %12s %8s  %s" % ("section", "metric", "moat", "peer", "ratio", "goal"))
    for sec, metric, m, pn, p, unit, goal, hb in rows:
        if m is None:
            print("%-8s %s" % (sec, metric))
            continue
        ratio = (m / p) if p else float("nan")
        print("%-8s %-58s %12.1f %12.1f %7.2fx  %s" % (sec, metric[:58], m, p or 0, ratio, goal))


try:
    main()
finally:
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(5)
        except Exception:
            p.kill()
    for c in reversed(cleanups):
        subprocess.run(c, shell=True, capture_output=True)
    shutil.rmtree(TMP, ignore_errors=True)
