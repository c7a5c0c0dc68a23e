#!/usr/bin/python3
"""Floods moat's proxy from inside a sandbox (tests/e2e/floods.t).

  flood_client.py hosts N THREADS SECONDS
      GET http://hI.flood.test/ for I in 0..N-1, each name once, through
      $HTTP_PROXY, at most SECONDS; prints "sent=K secs=S CODE=COUNT...".
  flood_client.py propose N THREADS SECONDS
      POST N agent proposals (distinct rule names) to policy.local the
      same way; prints the same line.
Every request is bounded (5 s socket timeout) and so is the whole run.
"""
import json
import os
import socket
import sys
import threading
import time

mode, n, nthreads, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
proxy = os.environ["HTTP_PROXY"].split("//", 1)[1].rstrip("/")
phost, pport = proxy.rsplit(":", 1)
lock = threading.Lock()
state = {"next": 0, "codes": {}}
deadline = time.time() + secs


def request(i):
    if mode == "hosts":
        h = "h%d.flood.test" % i
        return ("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (h, h)).encode()
    body = json.dumps({"intent_summary": "flood %d" % i, "operations": [{"addRule": {
        "ruleName": "flood%d" % i, "rule": {
            "endpoints": [{"host": "p%d.flood.test" % i, "port": 443}],
            "binaries": [{"path": "/usr/bin/curl"}]}}}]}).encode()
    return (b"POST http://policy.local/v1/proposals HTTP/1.1\r\nHost: policy.local\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


def worker():
    while time.time() < deadline:
        with lock:
            i = state["next"]
            if i >= n:
                return
            state["next"] += 1
        try:
            s = socket.create_connection((phost, int(pport)), timeout=5)
            s.sendall(request(i))
            r = b""
            while len(r) < 65536:
                b = s.recv(4096)
                if not b:
                    break
                r += b
            s.close()
            code = r[9:12].decode() if len(r) >= 12 else "short"
        except OSError as e:
            code = type(e).__name__
        with lock:
            state["codes"][code] = state["codes"].get(code, 0) + 1


t0 = time.time()
threads = [threading.Thread(target=worker) for _ in range(nthreads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("sent=%d secs=%.1f %s" % (state["next"], time.time() - t0,
      " ".join("%s=%d" % kv for kv in sorted(state["codes"].items()))))
