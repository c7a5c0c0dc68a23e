#!/usr/bin/env python3
"""Test client for the moat relay preface (docs/ssh.md).

relay_proxy.py PORT SANDBOX SECRET [--nonce HEX] [--ts-offset S] [--long]
               [--check]

Connects to 127.0.0.1:PORT, sends the MOAT1 line, waits for the reply.
With --check it prints the reply and exits 0 on "OK". Otherwise it is a
ProxyCommand: after "OK" it copies stdin to the socket and the socket to
stdout, half-closing on EOF. Exits 1 when the server refused.
"""
import hashlib, hmac, os, select, socket, sys, time

def main():
    a = sys.argv[1:]
    port, sandbox, secret = int(a[0]), a[1], a[2]
    opts = a[3:]
    nonce = os.urandom(16).hex()
    ts_off = 0
    if "--nonce" in opts:
        nonce = opts[opts.index("--nonce") + 1]
    if "--ts-offset" in opts:
        ts_off = int(opts[opts.index("--ts-offset") + 1])
    ts = str(int(time.time()) + ts_off)
    msg = "MOAT1|%s|%s|%s" % (sandbox, ts, nonce)
    mac = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
    line = "MOAT1 %s %s %s %s" % (sandbox, ts, nonce, mac)
    if "--long" in opts:
        line += " " + "x" * 1100
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((line + "\n").encode())
    reply = b""
    while not reply.endswith(b"\n") and len(reply) < 512:
        b = s.recv(1)
        if not b:
            break
        reply += b
    text = reply.decode(errors="replace").strip()
    if "--check" in opts:
        print(text if text else "(closed)")
        return 0 if text == "OK" else 1
    if text != "OK":
        sys.stderr.write("relay refused: %s\n" % (text or "(closed)"))
        return 1
    s.settimeout(None)
    fds = [0, s]
    out_open = True
    while True:
        r, _, _ = select.select(fds, [], [])
        if 0 in r:
            d = os.read(0, 65536)
            if not d:
                s.shutdown(socket.SHUT_WR)
                fds.remove(0)
            else:
                s.sendall(d)
        if s in r:
            d = s.recv(65536)
            if not d:
                return 0
            os.write(1, d)

if __name__ == "__main__":
    sys.exit(main())
