"""Live restore: how soon a new moatd accepts a login after the previous
one was killed, with 10 sandboxes and 50 SSH sessions running, next to a
cold start of the same config (every sandbox created anew).

Goal (issue 15): under one second from the new moatd's exec to the first
accepted login. Traffic stays on loopback; everything started here is
stopped at the end (moat shutdown, then the ssh clients by pid).
"""
import json, os, re, signal, subprocess, time

NSB = 10
NSESS = 50


def run(B, TMP, row, sh, free_port, log):
    moatd, moat = os.path.join(B, "moatd"), os.path.join(B, "moat")
    d = os.path.join(TMP, "restore")
    os.makedirs(d, exist_ok=True)
    key = os.path.join(d, "id")
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    port = free_port()
    tag = os.getpid() % 1000
    names = [f"br{tag}-{i}" for i in range(NSB)]
    cfg = {
        "state_dir": os.path.join(d, "var"), "live_restore": True,
        "listen": [{"addr": "127.0.0.1", "port": port}],
        "proxy": {"port": 20000 + os.getpid() % 20000},
        "net_pool": f"10.{200 + os.getpid() % 50}.0.0/16",
        "sandboxes": [{"name": n, "workspace": os.path.join(d, "ws-" + n),
                       "authorized_keys": [key + ".pub"]} for n in names],
    }
    cfgpath = os.path.join(d, "moatd.json")
    with open(cfgpath, "w") as f:
        json.dump(cfg, f)
    sshcfg = os.path.join(d, "ssh_config")
    with open(sshcfg, "w") as f:
        for n in names:
            f.write(f"Host {n}\n  HostName 127.0.0.1\n  Port {port}\n  User {n}\n"
                    f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
                    "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                    "  LogLevel ERROR\n  BatchMode yes\n  ConnectTimeout 10\n")
    env = dict(os.environ, MOAT_STORE=cfg["state_dir"] + "/moat.db",
               MOAT_CONTROL=cfg["state_dir"] + "/moatd.sock")
    clients, daemons = [], []

    def start_moatd(logname):
        lf = open(os.path.join(d, logname), "w")
        p = subprocess.Popen([moatd, "-c", cfgpath], stdout=lf, stderr=lf)
        daemons.append(p)
        return p

    def first_login(t0, limit=60):
        """ms from t0 until `ssh names[0] true` succeeds."""
        end = time.time() + limit
        while time.time() < end:
            if subprocess.run(["ssh", "-F", sshcfg, names[0], "true"],
                              capture_output=True, timeout=15).returncode == 0:
                return (time.time() - t0) * 1000
            time.sleep(0.02)
        raise RuntimeError("no login within %d s" % limit)

    def running_rows():
        out = subprocess.run([moat, "sessions", "--json"], capture_output=True,
                             text=True, env=env).stdout
        try:
            return sum(1 for line in out.splitlines() if line.strip()
                       and not json.loads(line).get("end_ms"))
        except ValueError:
            return 0

    try:
        # Cold start: every sandbox created, the proxy forked.
        t0 = time.time()
        p = start_moatd("cold.log")
        cold = first_login(t0)
        log(f"cold start: first login after {cold:.0f} ms")
        # A few at a time: max_startups_per_source (5) bounds the
        # connections one address may have in pre-auth.
        end = time.time() + 120
        for i in range(NSESS):
            clients.append(subprocess.Popen(
                ["ssh", "-F", sshcfg, names[i % NSB], "sleep 600"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            if i % 4 == 3:
                while running_rows() < i + 1 and time.time() < end:
                    time.sleep(0.05)
        while running_rows() < NSESS and time.time() < end:
            time.sleep(0.2)
        before = running_rows()
        log(f"{before} sessions running")
        p.send_signal(signal.SIGKILL)
        p.wait()
        # The restore: the same config, everything adopted.
        t0 = time.time()
        p = start_moatd("restore.log")
        warm = first_login(t0)
        with open(os.path.join(d, "restore.log")) as f:
            text = f.read()
        adopted = len(re.findall(r"sandbox \S+ adopted:", text))
        proxy = "proxy adopted" in text
        alive = sum(1 for c in clients if c.poll() is None)
        after = running_rows()
        out = subprocess.run([moat, "sessions", "--json"], capture_output=True,
                             text=True, env=env).stdout
        lost = [json.loads(l).get("end_reason") for l in out.splitlines()
                if l.strip() and json.loads(l).get("end_reason")]
        if lost:
            log(f"rows closed as lost: {lost}")
        log(f"restore: first login after {warm:.0f} ms; {adopted} sandboxes and "
            f"{'the' if proxy else 'no'} proxy adopted; {alive} ssh clients alive, "
            f"{after} session rows running")
        row("restore", f"first login after SIGKILL, {NSB} sandboxes + {NSESS} sessions",
            warm, "cold start", cold, "ms", "< 1000 ms", higher_better=False)
        row("restore", "sessions alive after the restore", alive, "before", before,
            "", f"= {NSESS}")
    finally:
        subprocess.run([moat, "shutdown"], capture_output=True, env=env)
        for p in daemons:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        for c in clients:
            if c.poll() is None:
                c.kill()
            c.wait()
