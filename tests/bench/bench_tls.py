"""make bench, section tls: the proxy's TLS termination against an
untouched tunnel (an endpoint with tls: skip), both through moat, from
a client in a `moat run` sandbox to an HTTPS upstream (bench_tls
server) in a network namespace this section creates, with a test CA
made here with openssl.

Rows: bulk MB/s and keep-alive requests/s (goal: >= 0.7 of the
untouched tunnel), the handshake latency the termination adds with a
cached leaf (goal: < 2 ms), and the memory per idle terminated
connection (goal: < 64 KB). squid with ssl-bump (Debian's squid-openssl;
the GnuTLS squid cannot bump) runs the same client from the host, side
by side; the row says why when it cannot.
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
        res = {}
        skip = go("bulk", 444, GB // 2)
        for port, what in ((443, "terminated"), (445, "terminated + L7")):
            res["bulk", port] = go("bulk", port, GB // 2)
            row("tls", f"bulk 512 MiB MB/s ({what} vs tls skip)", res["bulk", port],
                "tls skip", skip, "MB/s", ">= 0.7x")
        skip = go("rps", 444, 3)
        for port, what in ((443, "terminated"), (445, "terminated + L7")):
            res["rps", port] = go("rps", port, 3)
            row("tls", f"keep-alive GET req/s ({what} vs tls skip)", res["rps", port],
                "tls skip", skip, "/s", ">= 0.7x")
        skip = go("hs", 444, 200)
        term = res["hs", 443] = go("hs", 443, 200)
        row("tls", "CONNECT+handshake+GET median us (terminated, cached leaf)", term,
            "tls skip", skip, "us", "", higher_better=False)
        row("tls", "handshake latency added, median us (cached leaf)", term - skip,
            "goal", 2000, "us", "< 2000 us", higher_better=False)
        # Memory per idle terminated connection: PSS of moat-proxy.
        n = 200
        for port in (443, 444):
            ca = tca if port == 444 else "env"
            c = subprocess.Popen(inside + [client, "idle", "env", "0", HOST, str(port), ca,
                                           str(n), "4"], stdout=subprocess.PIPE, text=True)
            c.stdout.readline()
            proxy = [p for p in tree(c.pid) if _comm(p) == "moat-proxy"]
            before = pss_kb(proxy)
            c.stdout.readline()
            res["mem", port] = (pss_kb(proxy) - before) / n
            c.wait()
            if not proxy:
                raise RuntimeError("no moat-proxy process found under moat run")
        row("tls", "memory per idle terminated connection, KB PSS", res["mem", 443],
            "tls skip", res["mem", 444], "KB", "< 64 KB", higher_better=False)
        v = sh("squid -v", check=False).stdout
        if "--with-openssl" not in v:
            row("tls", "squid ssl-bump: n/a (this squid is built --with-gnutls; "
                "ssl-bump needs squid-openssl: tools/deps.sh bench)", None, "", None,
                "", "")
        else:
            _squid_bump(d, addr, tca, client, res, row, start, sh, tree, pss_kb,
                        free_port, wait_port)
    finally:
        for c in reversed(cleanups):
            subprocess.run(c, shell=True, capture_output=True)


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _squid_bump(d, addr, tca, client, res, row, start, sh, tree, pss_kb, free_port,
                wait_port):
    """squid-openssl bumping the same upstream, the client on the host."""
    sq = os.path.join(d, "squid")
    os.makedirs(sq)
    sh(f"cd {sq} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
       f"-nodes -keyout bump.key -out bump.pem -days 2 -subj /CN=squid-bench-CA && "
       f"printf '{addr} {HOST}\\n' > hosts && "
       f"/usr/lib/squid/security_file_certgen -c -s {sq}/ssl_db -M 4MB && "
       f"chown -R proxy: {sq} && chmod 755 {d} {os.path.dirname(d)}")
    port = free_port()
    with open(os.path.join(sq, "squid.conf"), "w") as f:
        f.write(f"http_port 127.0.0.1:{port} ssl-bump generate-host-certificates=on "
                f"dynamic_cert_mem_cache_size=4MB tls-cert={sq}/bump.pem "
                f"tls-key={sq}/bump.key\n"
                f"sslcrtd_program /usr/lib/squid/security_file_certgen -s {sq}/ssl_db "
                "-M 4MB\nsslcrtd_children 2 startup=1 idle=1\n"
                "acl step1 at_step SslBump1\nssl_bump peek step1\nssl_bump bump all\n"
                f"tls_outgoing_options cafile={tca}\nhosts_file {sq}/hosts\n"
                "acl SSL_ports port 443\nhttp_access allow all\ncache deny all\n"
                "cache_mem 8 MB\nmemory_pools off\nworkers 1\n"
                f"pid_filename {sq}/squid.pid\naccess_log none\n"
                f"cache_log {sq}/cache.log\ncoredump_dir {sq}\nshutdown_lifetime 1 seconds\n")
    p = start(["squid", "-N", "-f", os.path.join(sq, "squid.conf")])
    try:
        if not wait_port("127.0.0.1", port, 30):
            raise RuntimeError("squid ssl-bump did not start")
        bump = os.path.join(sq, "bump.pem")

        def sgo(mode, *args):
            r = sh([client, mode, "127.0.0.1", str(port), HOST, "443", bump] +
                   [str(a) for a in args], check=False, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"bench_tls {mode} via squid: {r.stderr.strip()[-200:]}")
            return float(r.stdout.split()[1])

        row("tls", "bulk 512 MiB MB/s (moat terminated vs squid ssl-bump)",
            res["bulk", 443], "squid", sgo("bulk", 1 << 29), "MB/s", ">= squid")
        row("tls", "keep-alive GET req/s (moat terminated vs squid ssl-bump)",
            res["rps", 443], "squid", sgo("rps", 3), "/s", ">= squid")
        row("tls", "CONNECT+handshake+GET median us (moat vs squid ssl-bump)",
            res["hs", 443], "squid", sgo("hs", 200), "us", "<= squid",
            higher_better=False)
        n = 200
        c = subprocess.Popen([client, "idle", "127.0.0.1", str(port), HOST, "443", bump,
                              str(n), "4"], stdout=subprocess.PIPE, text=True)
        c.stdout.readline()
        before = pss_kb(tree(p.pid))
        c.stdout.readline()
        mem = (pss_kb(tree(p.pid)) - before) / n
        c.wait()
        row("tls", "memory per idle bumped connection, KB PSS (moat vs squid)",
            res["mem", 443], "squid", mem, "KB", "<= squid", higher_better=False)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
