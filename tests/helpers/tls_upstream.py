#!/usr/bin/python3
"""The TLS upstream of the L7 tests: an HTTPS server (HTTP/1.1,
keep-alive) that the test runs inside a network namespace it created,
with a certificate from the test's own CA.

  *.git/...  git smart HTTP (git http-backend as CGI on GIT_ROOT, push
             enabled)
  /ws...     a WebSocket upgrade (101), then every byte echoed back
  /switch... 101 to any request (as an h2c server would answer an
             "Upgrade: h2c"), then every byte echoed back
  anything   200 with a JSON echo: method, path, headers, body

Methods are read case-insensitively, as some servers do ("delete" is
DELETE here), so the tests can show that moat decides what such a
server runs.

Usage: tls_upstream.py ADDR PORT CERT KEY [GIT_ROOT]
"""
import base64
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys

ADDR, PORT, CERT, KEY = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
GIT_ROOT = sys.argv[5] if len(sys.argv) > 5 else None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline()
                if not line:
                    return out  # the client abandoned the request
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def git(self, data):
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=GIT_ROOT,
                   GIT_HTTP_EXPORT_ALL="1", REQUEST_METHOD=self.command,
                   PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(data)), REMOTE_USER="tester",
                   REMOTE_ADDR="10.0.0.1",
                   GIT_HTTP_MAX_REQUEST_BUFFER="100M")
        p = subprocess.run(["git", "http-backend"], input=data, env=env,
                           capture_output=True)
        head, _, payload = p.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def websocket(self, proto="websocket"):
        key = self.headers.get("Sec-WebSocket-Key", "")
        acc = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", proto)
        self.send_header("Connection", "Upgrade")
        if proto == "websocket":
            self.send_header("Sec-WebSocket-Accept", acc.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            b = self.connection.recv(65536)
            if not b:
                break
            self.connection.sendall(b)
        self.close_connection = True

    def handle_any(self):
        if self.path.startswith("/switch"):
            return self.websocket("h2c")
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        data = self.body()
        if GIT_ROOT and ".git/" in self.path:
            return self.git(data)
        out = json.dumps({
            "method": self.command, "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": data.decode("utf-8", "replace")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = \
        do_HEAD = handle_any
    do_get = do_post = do_put = do_delete = do_patch = handle_any


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv = http.server.ThreadingHTTPServer((ADDR, PORT), Handler)
srv.daemon_threads = True
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
