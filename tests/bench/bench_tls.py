"""make bench, section tls: the proxy's TLS termination against an
untouched tunnel (an endpoint with tls: skip), both through moat, from
a client in a `moat run` sandbox to an HTTPS upstream (bench_tls
server) in a network namespace this section creates, with a test CA
made here with openssl.

Rows: bulk MB/s and keep-alive requests/s (goal: >= 0.7 of the
untouched tunnel), the handshake latency the termination adds with a
cached leaf (goal: < 2 ms), and the memory per idle terminated
connection (goal: < 64 KB). squid with ssl-bump is compared when the
installed squid can do it (it needs a build --with-openssl); the row
says why when it cannot.
"""
import json, os, subprocess

HOST = "tls.bench"


def run(B, TMP, row, start, sh, tree, pss_kb, free_port, wait_port, log):
    H = os.path.join(B, "tests", "helpers")
    MOAT = os.path.join(B, "moat")
    ns, addr, hostside = f"mt{os.getpid()}", "10.251.9.2", "10.251.9.1"
    hv, sv = f"mth{os.getpid()}"[:15], f"mts{os.getpid()}"[:15]
    cleanups = []
    try:
        d = os.path.join(TMP, "tls")
        os.makedirs(d)
        sh(f"cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           f"-nodes -keyout tca.key -out tca.pem -days 2 -subj /CN=bench-CA && "
           f"openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout up.key "
           f"-out up.csr -subj /CN={HOST} && printf 'subjectAltName=DNS:{HOST}\\n' > ext && "
           f"openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial -days 2 "
           f"-extfile ext -out up.pem && chmod 644 up.key")
        os.chmod(d, 0o755)
        sh(f"ip netns add {ns}")
        cleanups.append(f"ip netns del {ns}")
        sh(f"ip link add {hv} type veth peer name {sv} netns {ns}")
        cleanups.append(f"ip link del {hv}")
        sh(f"ip addr add {hostside}/30 dev {hv} && ip link set {hv} up")
        sh(f"ip -n {ns} addr add {addr}/30 dev {sv} && ip -n {ns} link set {sv} up "
           f"&& ip -n {ns} link set lo up")
        start(["ip", "netns", "exec", ns, os.path.join(H, "bench_tls"), "server", addr,
               os.path.join(d, "up.pem"), os.path.join(d, "up.key"), "900",
               "443", "444", "445"])
        if not wait_port(addr, 443) or not wait_port(addr, 444):
            raise RuntimeError("TLS upstream did not start")
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write(f"{addr} {HOST}\n")
        client = os.path.join(H, "bench_tls")
        pol = {"version": 1, "filesystem_policy": {"read_only": [H, d]},
               "network_policies": {"bench": {"endpoints": [
                   {"host": HOST, "port": 443},
                   {"host": HOST, "port": 444, "tls": "skip"},
                   {"host": HOST, "port": 445, "protocol": "rest", "access": "full"}],
                   "binaries": [{"path": client}]}}}
        pf = os.path.join(d, "policy.json")
        with open(pf, "w") as f:
            json.dump(pol, f)
        inside = [MOAT, "run", "-p", pf, "--hosts", os.path.join(d, "hosts"),
                  "--upstream-ca", os.path.join(d, "tca.pem"),
                  "--name", f"btls{os.getpid() % 10000}", "--"]
        tca = os.path.join(d, "tca.pem")

        def go(mode, port, *args):
            ca = tca if port == 444 else "env"
            r = sh(inside + [client, mode, "env", "0", HOST, str(port), ca] +
                   [str(a) for a in args], check=False, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"bench_tls {mode} {port}: {r.stderr.strip()[-200:]}")
            return float(r.stdout.split()[1])

        GB = 1 << 30
        skip = go("bulk", 444, GB // 2)
        for port, what in ((443, "terminated"), (445, "terminated + L7")):
            row("tls", f"bulk 512 MiB MB/s ({what} vs tls skip)", go("bulk", port, GB // 2),
                "tls skip", skip, "MB/s", ">= 0.7x")
        skip = go("rps", 444, 3)
        for port, what in ((443, "terminated"), (445, "terminated + L7")):
            row("tls", f"keep-alive GET req/s ({what} vs tls skip)", go("rps", port, 3),
                "tls skip", skip, "/s", ">= 0.7x")
        skip = go("hs", 444, 200)
        term = go("hs", 443, 200)
        row("tls", "CONNECT+handshake+GET median us (terminated, cached leaf)", term,
            "tls skip", skip, "us", "", higher_better=False)
        row("tls", "handshake latency added, median us (cached leaf)", term - skip,
            "goal", 2000, "us", "< 2000 us", higher_better=False)
        # Memory per idle terminated connection: PSS of moat-proxy.
        n = 200
        res = {}
        for port in (443, 444):
            ca = tca if port == 444 else "env"
            c = subprocess.Popen(inside + [client, "idle", "env", "0", HOST, str(port), ca,
                                           str(n), "4"], stdout=subprocess.PIPE, text=True)
            c.stdout.readline()
            proxy = [p for p in tree(c.pid) if _comm(p) == "moat-proxy"]
            before = pss_kb(proxy)
            c.stdout.readline()
            res[port] = (pss_kb(proxy) - before) / n
            c.wait()
            if not proxy:
                raise RuntimeError("no moat-proxy process found under moat run")
        row("tls", "memory per idle terminated connection, KB PSS", res[443],
            "tls skip", res[444], "KB", "< 64 KB", higher_better=False)
        v = sh("squid -v", check=False).stdout
        if "--with-openssl" not in v:
            row("tls", "squid ssl-bump: n/a (this squid is built --with-gnutls; "
                "ssl-bump needs squid-openssl, which Conflicts: squid)", None, "", None,
                "", "")
    finally:
        for c in reversed(cleanups):
            subprocess.run(c, shell=True, capture_output=True)


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
