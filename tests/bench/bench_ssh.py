"""SSH section of make bench: moatd against OpenSSH sshd and dropbear.

All three serve 127.0.0.1 on free ports with an ed25519 key made here.
sshd and dropbear log a throwaway user in (created for the run and removed
after); moatd serves a sandbox named "bench".
"""
import json, os, subprocess, time

USER = "moat-bench"


def run(B, TMP, row, start, sh, tree, pss_kb, free_port, wait_port, hyperfine, log):
    key = os.path.join(TMP, "id_bench")
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    pub = open(key + ".pub").read()
    home = f"/var/lib/{USER}"
    created = sh(["id", USER], check=False).returncode != 0
    if created:
        sh(["useradd", "--system", "--create-home", "--home-dir", home,
            "--shell", "/bin/bash", USER])
        # Not locked ("!"), or sshd refuses its keys too; "*" is no password.
        sh(["usermod", "-p", "*", USER])
    try:
        _run(B, TMP, row, start, sh, tree, pss_kb, free_port, wait_port, hyperfine, log, key, pub, home)
    finally:
        if created:
            sh(["userdel", "-r", USER], check=False)


def _run(B, TMP, row, start, sh, tree, pss_kb, free_port, wait_port, hyperfine, log, key, pub, home):
    os.makedirs(f"{home}/.ssh", exist_ok=True)
    with open(f"{home}/.ssh/authorized_keys", "w") as f:
        f.write(pub)
    sh(["chown", "-R", f"{USER}:", f"{home}/.ssh"])
    sh(f"head -c 512M /dev/urandom > {home}/blob && chown {USER}: {home}/blob")

    # OpenSSH sshd
    sp = free_port()
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{TMP}/sshd_key"])
    os.makedirs("/run/sshd", exist_ok=True)
    with open(f"{TMP}/sshd_config", "w") as f:
        f.write(f"Port {sp}\nListenAddress 127.0.0.1\nHostKey {TMP}/sshd_key\n"
                f"PidFile {TMP}/sshd.pid\nUsePAM no\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
                "PrintMotd no\nMaxStartups 200\nMaxSessions 200\n")
    sshd = start(["/usr/sbin/sshd", "-D", "-e", "-f", f"{TMP}/sshd_config"])
    # dropbear
    dp = free_port()
    sh(["dropbearkey", "-t", "ed25519", "-f", f"{TMP}/db_key"])
    db = start(["dropbear", "-F", "-E", "-s", "-m", "-p", f"127.0.0.1:{dp}", "-r", f"{TMP}/db_key",
                "-P", f"{TMP}/db.pid"])
    # moatd
    mp = free_port()
    ws = f"{TMP}/ws"
    os.makedirs(ws, exist_ok=True)
    sh(f"cp {home}/blob {ws}/blob && chown -R 1000:1000 {ws}")
    cfg = {"state_dir": f"{TMP}/var", "listen": [{"addr": "127.0.0.1", "port": mp}],
           "proxy": {"port": 3128},
           "sandboxes": [{"name": "bench", "workspace": ws, "authorized_keys": [pub.strip()]}]}
    with open(f"{TMP}/moatd.json", "w") as f:
        json.dump(cfg, f)
    md = start([os.path.join(B, "moatd"), "-c", f"{TMP}/moatd.json"])
    for port in (sp, dp, mp):
        if not wait_port("127.0.0.1", port, 20):
            raise RuntimeError(f"server on {port} did not start")
    with open(f"{TMP}/ssh_config", "w") as f:
        for name, port, user in (("sshd", sp, USER), ("dropbear", dp, USER), ("moat", mp, "bench")):
            f.write(f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                    f"  IdentityFile {key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
                    "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n")
    ssh = ["ssh", "-F", f"{TMP}/ssh_config"]
    for h in ("sshd", "dropbear", "moat"):
        r = sh(ssh + [h, "true"], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"ssh {h} true failed: {r.stderr.strip()[-200:]}")

    meds = hyperfine([" ".join(ssh + [h, "true"]) for h in ("moat", "sshd", "dropbear")], runs=20)
    row("ssh", "`ssh NAME true` ms (moat vs sshd)", meds[0], "sshd", meds[1], "ms",
        "<= 0.5x sshd", higher_better=False)
    row("ssh", "`ssh NAME true` ms (moat vs dropbear)", meds[0], "dropbear", meds[2], "ms",
        "< dropbear", higher_better=False)

    def rate(cmd, nbytes):
        t0 = time.time()
        subprocess.run(cmd, shell=True, check=True, capture_output=True)
        return nbytes / (time.time() - t0) / 1e6
    N = 1 << 30
    res = {}
    for h in ("moat", "sshd", "dropbear"):
        s = " ".join(ssh + [h])
        res[h, "down"] = rate(f"{s} 'head -c {N} /dev/zero' > /dev/null", N)
        res[h, "up"] = rate(f"head -c {N} /dev/zero | {s} 'cat > /dev/null'", N)
        res[h, "sftp"] = rate(f"cd {TMP} && sftp -q -F {TMP}/ssh_config -b - {h} <<'X'\nget blob /dev/null\nX",
                              512 << 20)
    for what, label in (("down", "exec download 1 GiB MB/s"), ("up", "exec upload 1 GiB MB/s"),
                        ("sftp", "sftp get 512 MiB MB/s")):
        row("ssh", f"{label} (moat vs sshd)", res["moat", what], "sshd", res["sshd", what], "MB/s",
            ">= 1.5x sshd")
        row("ssh", f"{label} (dropbear vs sshd)", res["dropbear", what], "sshd", res["sshd", what],
            "MB/s", "")

    # Memory per idle connection: PSS of the server's process tree.
    n = 20
    for h, pid in (("moat", md.pid), ("sshd", sshd.pid), ("dropbear", db.pid)):
        before = pss_kb(tree(pid))
        # One at a time, each after the previous one authenticated:
        # dropbear closes a sixth unauthenticated connection per address.
        cl = []
        for _ in range(n):
            c = subprocess.Popen(ssh + ["-N", "-o", "PermitLocalCommand=yes", "-o",
                                        "LocalCommand=echo up", h],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
            if c.stdout.readline().strip() != "up":
                raise RuntimeError(f"idle connection to {h} failed")
            cl.append(c)
        time.sleep(1.0)
        res[h, "mem"] = (pss_kb(tree(pid)) - before) / n
        for c in cl:
            c.terminate()
        for c in cl:
            c.wait()
    row("ssh", "memory per idle connection KB PSS (moat vs dropbear)", res["moat", "mem"], "dropbear",
        res["dropbear", "mem"], "KB", "<= dropbear", higher_better=False)
    row("ssh", "memory per idle connection KB PSS (sshd vs dropbear)", res["sshd", "mem"], "dropbear",
        res["dropbear", "mem"], "KB", "", higher_better=False)
