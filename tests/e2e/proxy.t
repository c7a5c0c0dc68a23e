#!/bin/bash
# The egress proxy end to end: real `moat run`, real curl and python3 in
# the sandbox, an upstream host in a netns this test creates. Names reach
# the proxy only through the run's hosts file (--hosts). Covers the L4
# matrix (binary x host x port, wildcards, multi-port), SSRF, CONNECT vs
# forward, binary identity (copies, symlinks, ancestors), CONNECT target
# parsing, request smuggling, bypass events and the 403 body.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || { echo "1..0 # SKIP no curl"; exit 0; }
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
# Every name below reaches the proxy through --hosts; without it nothing
# here can pass, so say so once instead of 50 times.
"$MOAT" run --help 2>&1 | grep -q -- --hosts ||
	{ t_fail "moat run has --hosts FILE"; done_testing; exit 1; }
export MOAT_STORE="$OBJ/moat.db"
PY=$(readlink -f /usr/bin/python3)
M="$$"

cat > "$OBJ/hosts" <<EOF
$UP_ADDR upstream.test a.wild.test b.c.wild.test wild.test
127.0.0.1 loopback.test
169.254.169.254 metadata.test
$UP_HOSTSIDE hostside.test
10.200.255.250 pool.test
EOF

# A logging TCP server in the upstream netns on 8081: it appends every byte
# it receives to up.log and answers one HTTP response, so anything the
# proxy lets through (a smuggled request included) shows in the log.
ip netns exec "$UP_NS" /usr/bin/python3 -c '
import socket, threading, sys
log = open(sys.argv[2], "ab", buffering=0)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8081)); s.listen(64)
def serve(c):
    c.settimeout(0.5); data = b""; answered = False
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            log.write(b); data += b
            if not answered and b"\r\n\r\n" in data:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nlogged\n")
                answered = True
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$UP_ADDR" "$OBJ/up.log" >/dev/null 2>&1 &
on_cleanup "kill $!"
for _ in $(seq 50); do
	ip netns exec "$UP_NS" bash -c "exec 3<>/dev/tcp/$UP_ADDR/8081" 2>/dev/null && break
	sleep 0.1
done

# The workspace holds the in-sandbox helpers.
WS="$OBJ/ws"
mkdir -p "$WS"
# get.py URL: urllib through the proxy variables; prints body and code=N.
cat > "$WS/get.py" <<'EOF'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(r.read().decode(), "code=%d" % r.status)
except urllib.error.HTTPError as e:
    print(e.read().decode(), "code=%d" % e.code)
EOF
# raw.py [-e DATA] REQ: REQ (backslash escapes) sent as is to the proxy;
# prints "code=N closed=0|1 responses=N", then what came back. Stops at
# close, after 4 s, or at a 200 to a CONNECT; then -e DATA (backslash
# escapes too) is sent through the tunnel and "echo=..." printed.
cat > "$WS/raw.py" <<'EOF'
import os, socket, sys, time
def unescape(s):
    return s.encode("latin-1").decode("unicode_escape").encode("latin-1")
echo = None
if sys.argv[1] == "-e":
    echo = unescape(sys.argv[2]); del sys.argv[1:3]
req = unescape(sys.argv[1])
hp = os.environ["http_proxy"].split("//", 1)[1].rstrip("/")
host, port = hp.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=4)
s.sendall(req)
data = b""; closed = 0; end = time.time() + 4
while time.time() < end:
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    except ConnectionResetError:
        closed = 1; break
    if not b:
        closed = 1; break
    data += b
    if req.lstrip(b"\r\n").startswith(b"CONNECT") and data.startswith(b"HTTP/1.1 200") and b"\r\n\r\n" in data:
        break
code = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "none"
n = sum(1 for l in data.split(b"\r\n") if l.startswith(b"HTTP/1."))
print("code=%s closed=%d responses=%d" % (code, closed, n))
if echo is not None and code == "200":
    s.sendall(echo); s.settimeout(3)
    try:
        print("echo=" + s.recv(65536).decode())
    except OSError as e:
        print("echo-error=%s" % e)
print(data.decode("latin-1"))
EOF
# the sandbox has a uid of its own (a new one per run): let it write
chmod -R a+rwX "$WS"

# pol NAME NETWORK_POLICIES: $OBJ/NAME.json with those network policies.
pol() { printf '{"version":1,"network_policies":{%s}}\n' "$2" > "$OBJ/$1.json"; }
# rule KEY ENDPOINTS BINARY...: one network policy entry.
rule() {
	k=$1 e=$2; shift 2
	b=""; for p in "$@"; do b="$b${b:+,}{\"path\":\"$p\"}"; done
	printf '"%s":{"endpoints":[%s],"binaries":[%s]}' "$k" "$e" "$b"
}
# mrun POLICY CMD: CMD (bash -c) in a fresh sandbox; POLICY "" = default.
mrun() {
	p=$1; shift
	timeout 30 "$MOAT" run ${p:+-p "$OBJ/$p.json"} -w "$WS" \
		--hosts "$OBJ/hosts" -- bash -c "$1" 2>&1
}
CURL='curl -s -m 5 -w " code=%{http_code}"'
PCURL='curl -s -p -m 5 -o /dev/null -w "connect=%{http_connect}"'
has() { printf '%s' "$1" | grep -qF -- "$2"; }
# check NAME OUTPUT PATTERN...: passes when OUTPUT has every PATTERN
check() {
	n=$1 out=$2; shift 2
	for p in "$@"; do
		has "$out" "$p" || { t_fail "$n"; diag "  missing: $p" "  got: $out"; return; }
	done
	t_ok "$n"
}

# --- L4 matrix -----------------------------------------------------------
out=$(mrun "" "$CURL http://upstream.test/")
check "no policy: curl denied with policy_denied JSON" "$out" code=403 \
	'"error":"policy_denied"' 'network connections not allowed by policy'

pol curl80 "$(rule up '{"host":"upstream.test","port":80}' /usr/bin/curl)"
out=$(mrun curl80 "$CURL http://upstream.test/")
check "allowed binary and host: curl gets the upstream" "$out" upstream-ok code=200
out=$(mrun curl80 "python3 /sandbox/get.py http://upstream.test/")
check "wrong binary (python3 when only curl is allowed) denied" "$out" code=403 \
	"is in policy 'up' but binary '$PY' is not one of its binaries"
out=$(mrun curl80 "$CURL http://upstream.test:7/")
check "wrong port (:7 under a :80 policy) denied: no policy has it" "$out" \
	code=403 'endpoint upstream.test:7 is not allowed by any policy'
out=$(mrun curl80 "$CURL http://upstream.test:8080/")
check "wrong port (:8080) denied" "$out" code=403 'upstream.test:8080 is not allowed'

pol cross "$(rule a '{"host":"upstream.test","port":80}' /usr/bin/python3),$(rule b '{"host":"other.test","port":80}' /usr/bin/curl)"
out=$(mrun cross "$CURL http://upstream.test/")
check "cross-policy (endpoint in A, binary in B) denied" "$out" code=403 \
	"is in policy 'a' but binary '/usr/bin/curl' is not one of its binaries"
out=$(mrun cross "python3 /sandbox/get.py http://upstream.test/")
check "cross-policy: A's own binary is allowed" "$out" upstream-ok code=200

pol wild1 "$(rule w "{\"host\":\"*.wild.test\",\"port\":80,\"allowed_ips\":[\"$UP_ADDR/32\"]}" /usr/bin/curl)"
out=$(mrun wild1 "$CURL http://a.wild.test/")
check "*.wild.test allows a.wild.test" "$out" upstream-ok code=200
out=$(mrun wild1 "$CURL http://wild.test/")
check "*.wild.test denies the apex wild.test" "$out" code=403 'wild.test:80 is not allowed by any policy'
out=$(mrun wild1 "$CURL http://b.c.wild.test/")
check "*.wild.test denies b.c.wild.test (two labels)" "$out" code=403 'b.c.wild.test:80 is not allowed'
pol wild2 "$(rule w "{\"host\":\"**.wild.test\",\"port\":80,\"allowed_ips\":[\"$UP_ADDR/32\"]}" /usr/bin/curl)"
out=$(mrun wild2 "$CURL http://b.c.wild.test/")
check "**.wild.test allows b.c.wild.test" "$out" upstream-ok code=200
out=$(mrun wild2 "$CURL http://wild.test/")
check "**.wild.test denies the apex" "$out" code=403 'wild.test:80 is not allowed'
pol wild3 "$(rule w '{"host":"*.wild.test","port":80}' /usr/bin/curl)"
out=$(mrun wild3 "$CURL http://a.wild.test/")
check "a wildcard without allowed_ips refuses the internal address" "$out" \
	code=403 '"error":"ssrf_denied"' "a.wild.test resolves to internal address $UP_ADDR"

pol ports "$(rule mp '{"host":"upstream.test","ports":[80,7]}' /usr/bin/curl)"
out=$(mrun ports "$CURL http://upstream.test/; echo; $PCURL http://upstream.test:7/; echo; $PCURL http://upstream.test:8080/")
check "ports [80, 7]: 80 allowed" "$out" upstream-ok code=200
check "ports [80, 7]: 7 allowed (CONNECT)" "$out" connect=200
check "ports [80, 7]: 8080 denied" "$out" connect=403

# --- SSRF ----------------------------------------------------------------
pol ssrf "$(rule s '{"host":"loopback.test","port":80},{"host":"metadata.test","port":80}' /usr/bin/curl)"
out=$(mrun ssrf "$CURL http://loopback.test/")
check "a name resolving to loopback is refused though allowed" "$out" code=403 \
	'"error":"ssrf_denied"' 'loopback.test resolves to always-blocked address 127.0.0.1'
out=$(mrun ssrf "$CURL http://metadata.test/")
check "a name resolving to the metadata address is refused" "$out" code=403 \
	'"error":"ssrf_denied"' 'metadata.test resolves to cloud metadata address 169.254.169.254'
pol aips "$(rule h "{\"ports\":[80],\"allowed_ips\":[\"$UP_ADDR/32\"]}" /usr/bin/curl)"
out=$(mrun aips "$CURL http://upstream.test/")
check "allowed_ips (hostless endpoint) permits the private address" "$out" upstream-ok code=200
pol aips2 "$(rule h '{"host":"upstream.test","port":80,"allowed_ips":["10.99.0.0/16"]}' /usr/bin/curl)"
out=$(mrun aips2 "$CURL http://upstream.test/")
check "an address outside allowed_ips is refused" "$out" code=403 \
	'"error":"ssrf_denied"' "outside the endpoint's allowed_ips"
pol inner "$(rule i '{"host":"hostside.test","port":80},{"host":"pool.test","port":80},{"host":"pool.test","port":81,"allowed_ips":["10.200.255.0/24"]}' /usr/bin/curl)"
out=$(mrun inner "$CURL http://hostside.test/")
check "an exact host resolving to an address of the host is refused" "$out" \
	code=403 '"error":"ssrf_denied"' "hostside.test resolves to $UP_HOSTSIDE, which is an address of this host"
out=$(mrun inner "$CURL http://pool.test/; echo; $CURL http://pool.test:81/")
check "exact host and allowed_ips into the sandbox pool are refused" "$out" \
	code=403 '"error":"ssrf_denied"' "pool.test resolves to 10.200.255.250, which is an address of a sandbox"
[ "$(printf '%s' "$out" | grep -o 'which is an address of a sandbox' | wc -l)" = 2 ] &&
	t_ok "pool.test: both the exact and the allowed_ips endpoint refused" ||
	t_fail "pool.test: both the exact and the allowed_ips endpoint refused"
# public_only (what proposals carry): an exact host mapped to 10.x is
# refused, CONNECT and forward alike, until allowed_ips covers it.
pol pubonly "$(rule po '{"host":"upstream.test","port":80,"public_only":true}' /usr/bin/curl)"
out=$(mrun pubonly "$CURL http://upstream.test/; echo; $PCURL http://upstream.test/")
check "public_only: an exact host resolving to 10.x is refused" "$out" \
	code=403 '"error":"ssrf_denied"' \
	"upstream.test resolves to internal address $UP_ADDR, connection rejected (the endpoint is public_only" \
	"add allowed_ips covering $UP_ADDR" connect=403
has "$out" upstream-ok && t_fail "public_only: nothing reached the upstream" ||
	t_ok "public_only: nothing reached the upstream"
pol pubonly2 "$(rule po "{\"host\":\"upstream.test\",\"port\":80,\"public_only\":true,\"allowed_ips\":[\"$UP_ADDR/32\"]}" /usr/bin/curl)"
out=$(mrun pubonly2 "$CURL http://upstream.test/")
check "public_only with allowed_ips covering it: allowed" "$out" upstream-ok code=200
pol literal "$(rule l "{\"host\":\"$UP_ADDR\",\"port\":80}" /usr/bin/curl)"
out=$(mrun literal "$CURL http://$UP_ADDR/")
check "a private IP-literal host is allowed" "$out" upstream-ok code=200

# --- CONNECT and forward decide alike -----------------------------------
out=$(mrun curl80 "curl -s -p -m 5 -w ' connect=%{http_connect}' http://upstream.test/; echo; $CURL http://upstream.test/")
check "allowed: CONNECT and forward both pass" "$out" connect=200 code=200
is "allowed: both got the body" "$(printf '%s' "$out" | grep -c upstream-ok)" 2
out=$(mrun curl80 "$PCURL http://upstream.test:7/; echo; $CURL http://upstream.test:7/")
check "denied: CONNECT and forward both 403" "$out" connect=403 code=403

# --- binary identity ----------------------------------------------------
out=$(mrun curl80 "cp /usr/bin/curl \$HOME/curl && \$HOME/curl -s -m 5 -w ' code=%{http_code}' http://upstream.test/")
check "a copy of curl in the workspace is denied" "$out" code=403 "binary '/sandbox/curl'"
out=$(mrun curl80 "ln -sf /usr/bin/curl \$HOME/c && \$HOME/c -s -m 5 -w ' code=%{http_code}' http://upstream.test/")
check "curl through a symlink in the workspace is allowed" "$out" upstream-ok code=200
pol child "$(rule py '{"host":"upstream.test","port":80}' "$PY")"
out=$(mrun child "python3 -c 'import subprocess; subprocess.run([\"curl\", \"-s\", \"-m\", \"5\", \"-w\", \" code=%{http_code}\", \"http://upstream.test/\"])'")
check "curl run by an allowed python3 is allowed (ancestor)" "$out" upstream-ok code=200
out=$(mrun child "$CURL http://upstream.test/")
check "the same curl run from bash alone is denied" "$out" code=403 "binary '/usr/bin/curl'"

# --- code loaded into a caller ------------------------------------------
# An allowed binary runs with the rights of its path only while every
# executable mapping comes from a read-only mount (proxy/maps.c).
printf 'int moat_e2e_%s(void) { return 1; }\n' "$M" |
	cc -shared -fPIC -x c -o "$WS/lib.so" - && mkdir -p "$WS/libs" &&
	cp "$(readlink -f /usr/lib/*/libz.so.1 | head -1)" "$WS/libs/libz.so.1" &&
	chmod -R a+rwX "$WS" || t_fail "build the workspace libraries"
out=$(mrun curl80 "LD_PRELOAD=/sandbox/lib.so $CURL http://upstream.test/")
check "an allowed curl with LD_PRELOAD of a workspace library is denied" \
	"$out" code=403 "code from /sandbox/lib.so loaded into /usr/bin/curl"
out=$(mrun curl80 "LD_LIBRARY_PATH=/sandbox/libs $CURL http://upstream.test/")
check "LD_LIBRARY_PATH into the workspace is denied" "$out" code=403 \
	"code from /sandbox/libs/libz.so.1 loaded into /usr/bin/curl"
sysz=$(readlink -f /usr/lib/*/libz.so.1 | head -1)
out=$(mrun curl80 "LD_PRELOAD=$sysz $CURL http://upstream.test/")
check "LD_PRELOAD of a system library is allowed (read-only mount)" "$out" \
	upstream-ok code=200
cat > "$WS/memfd.py" <<'EOF2'
import ctypes, os, runpy, sys
fd = os.memfd_create("inj")
os.write(fd, open("/sandbox/lib.so", "rb").read())
ctypes.CDLL("/proc/self/fd/%d" % fd)
sys.argv = ["get.py", "http://upstream.test/"]
runpy.run_path("/sandbox/get.py", run_name="__main__")
EOF2
chmod a+r "$WS/memfd.py"
out=$(mrun child "python3 /sandbox/memfd.py")
check "python with code loaded from a memfd is denied" "$out" code=403 \
	"code from memfd:inj loaded into $PY"
out=$(mrun child "python3 /sandbox/get.py http://upstream.test/")
check "the same python without it is allowed" "$out" upstream-ok code=200
cat > "$WS/spawn.py" <<'EOF2'
import os, subprocess
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
subprocess.run(["curl", "-s", "-m", "5", "-w", " code=%{http_code}",
                "http://upstream.test/"], env=env)
EOF2
chmod a+r "$WS/spawn.py"
out=$(mrun child "LD_PRELOAD=/sandbox/lib.so python3 /sandbox/spawn.py")
check "an allowed ancestor with workspace code does not grant its child" \
	"$out" code=403 "code from /sandbox/lib.so loaded into $PY"
pol node "$(rule n '{"host":"upstream.test","port":80}' "$(readlink -f /usr/bin/node)")"
out=$(mrun node "node -e '
const u = new URL(process.env.http_proxy);
require(\"http\").get({host: u.hostname, port: u.port, path: \"http://upstream.test/\",
    headers: {Host: \"upstream.test\"}}, r => { let b = \"\"; r.on(\"data\", d => b += d);
    r.on(\"end\", () => console.log(b.trim(), \"code=\" + r.statusCode)); });'")
check "node (a JIT: anonymous executable memory) is allowed" "$out" \
	upstream-ok code=200

# --- CONNECT target parsing ----------------------------------------------
pol raw "$(rule r '{"host":"upstream.test","ports":[80,7,8081]}' "$PY")"
raw() { mrun raw "python3 /sandbox/raw.py $(printf '%q ' "$@")"; }
out=$(raw 'CONNECT [fe80::1]:80 HTTP/1.1\r\nHost: [fe80::1]:80\r\n\r\n')
check "CONNECT [fe80::1]:80 parses and is denied (403)" "$out" code=403
out=$(raw 'CONNECT upstream.test:99999 HTTP/1.1\r\nHost: upstream.test\r\n\r\n')
check "CONNECT port 99999 is 400" "$out" code=400
out=$(raw 'CONNECT upstream.test\x00.evil:80 HTTP/1.1\r\nHost: upstream.test\r\n\r\n')
check "CONNECT with a NUL in the target is 400" "$out" code=400
out=$(raw 'CONNECT upstream.test.:80 HTTP/1.1\r\nHost: upstream.test.\r\n\r\n')
check "CONNECT upstream.test.:80 (trailing dot) is allowed" "$out" code=200
out=$(raw 'CONNECT u@upstream.test:80 HTTP/1.1\r\nHost: upstream.test\r\n\r\n')
check "CONNECT with userinfo is 400" "$out" code=400
out=$(mrun raw "python3 /sandbox/raw.py -e ping-$M 'CONNECT upstream.test:7 HTTP/1.1\r\nHost: upstream.test:7\r\n\r\n'")
check "an allowed CONNECT tunnel carries bytes both ways" "$out" code=200 "echo=ping-$M"

# --- smuggling -------------------------------------------------------------
out=$(raw 'GET http://upstream.test/ HTTP/1.1\r\nHost: upstream.test\r\n\r\n')
check "a well-formed raw forward request passes (control)" "$out" code=200 upstream-ok
out=$(raw 'POST http://upstream.test:8081/cl-te HTTP/1.1\r\nHost: upstream.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
check "Content-Length with Transfer-Encoding is 400" "$out" code=400 closed=1
out=$(raw 'POST http://upstream.test:8081/dup-cl HTTP/1.1\r\nHost: upstream.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde')
check "duplicate Content-Length is 400" "$out" code=400 closed=1
out=$(raw 'GET http://upstream.test:8081/bare-lf HTTP/1.1\nHost: upstream.test\n\n')
check "a bare LF line ending is 400" "$out" code=400 closed=1
out=$(raw 'GET http://upstream.test:8081/obs-fold HTTP/1.1\r\nHost: upstream.test\r\nX-A: a\r\n b\r\n\r\n')
check "an obs-fold header is 400" "$out" code=400 closed=1
out=$(raw "GET http://upstream.test:8081/control-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n")
check "a forward request reaches the logging upstream (control)" "$out" code=200 logged
t "the upstream log shows it" grep -q "control-$M" "$OBJ/up.log"
out=$(raw "CONNECT wild.test:8081 HTTP/1.1\\r\\nHost: wild.test:8081\\r\\n\\r\\nGET /smuggled-$M HTTP/1.1\\r\\nHost: wild.test\\r\\n\\r\\n")
check "a denied CONNECT with a pipelined request: one 403, then closed" \
	"$out" code=403 closed=1 responses=1
# --- strict HTTP (RFC 9112): Host, and one empty line before a request ---
out=$(raw "GET http://upstream.test:8081/nohost-$M HTTP/1.1\\r\\nUser-Agent: t\\r\\n\\r\\n")
check "an HTTP/1.1 forward request without Host is 400 and closed" "$out" code=400 closed=1 'without Host'
out=$(raw "GET http://upstream.test:8081/twohost-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\nHost: evil.test\\r\\n\\r\\n")
check "a forward request with two Host headers is 400 and closed" "$out" code=400 closed=1 'more than one Host'
out=$(raw "CONNECT upstream.test:8081 HTTP/1.1\\r\\n\\r\\nGET /connect-nohost-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n")
check "an HTTP/1.1 CONNECT without Host is 400 and closed" "$out" code=400 closed=1 responses=1
out=$(raw "CONNECT upstream.test:8081 HTTP/1.1\\r\\nHost: upstream.test:8081\\r\\nHost: upstream.test:8081\\r\\n\\r\\nGET /connect-twohost-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n")
check "a CONNECT with two Host headers is 400 and closed" "$out" code=400 closed=1 responses=1
out=$(raw "GET http://upstream.test:8081/http10-$M HTTP/1.0\\r\\n\\r\\n")
check "an HTTP/1.0 request without Host is served" "$out" code=200 logged
out=$(raw "\\r\\nGET http://upstream.test:8081/crlf-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n")
check "a request after one stray CRLF is served" "$out" code=200 logged
out=$(mrun raw "python3 /sandbox/raw.py -e 'GET /crlf-tunnel-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n' '\\r\\nCONNECT upstream.test:8081 HTTP/1.1\\r\\nHost: upstream.test:8081\\r\\n\\r\\n'")
check "a CONNECT after one stray CRLF tunnels" "$out" code=200 echo=HTTP/1.1
out=$(raw "\\r\\n\\r\\nGET http://upstream.test:8081/crlf2-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n")
check "two empty lines before the request line are 400 and closed" "$out" code=400 closed=1
# A trailing-dot CONNECT host is the same name (moat departs from OpenShell).
out=$(mrun raw "python3 /sandbox/raw.py -e 'GET /dot-$M HTTP/1.1\\r\\nHost: upstream.test.\\r\\n\\r\\n' 'CONNECT UPSTREAM.test.:8081 HTTP/1.1\\r\\nHost: UPSTREAM.test.:8081\\r\\n\\r\\n'")
check "CONNECT upstream.test.:8081 (trailing dot, any case) is the allowed name" "$out" code=200 echo=HTTP/1.1
out=$(raw 'CONNECT upstream.test.:9 HTTP/1.1\r\nHost: upstream.test.:9\r\n\r\n')
check "a denied trailing-dot CONNECT names the host without the dot" "$out" \
	code=403 '"host":"upstream.test"' 'endpoint upstream.test:9 is not allowed by any policy'
sleep 0.6	# the logging server reads for 0.5 s after answering
for w in http10 crlf crlf-tunnel dot; do
	t "the $w-$M request reached the upstream" grep -q "/$w-$M " "$OBJ/up.log"
done
t_not "no request refused for its Host or empty lines reached the upstream" \
	grep -qE "(nohost|twohost|connect-nohost|connect-twohost|crlf2)-$M" "$OBJ/up.log"
out=$(raw "GET http://upstream.test:8081/first-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\nGET /second-$M HTTP/1.1\\r\\nHost: upstream.test\\r\\n\\r\\n")
check "a forward request with a pipelined second: one response" "$out" code=200 responses=1
sleep 0.6	# the logging server reads for 0.5 s after answering
t "the first forward request reached the upstream" grep -q "first-$M" "$OBJ/up.log"
t_not "the request after the denied CONNECT never reached the upstream" grep -q "smuggled-$M" "$OBJ/up.log"
t_not "the pipelined second forward request never reached the upstream" grep -q "second-$M" "$OBJ/up.log"
t_not "no malformed request reached the upstream" grep -qE 'cl-te|dup-cl|bare-lf|obs-fold' "$OBJ/up.log"

# --- bypass ---------------------------------------------------------------
s=$(date +%s%N)
out=$(timeout 30 "$MOAT" run -p "$OBJ/curl80.json" -w "$WS" --hosts "$OBJ/hosts" \
	--name "pxb$M" -- curl -sS -m 20 --noproxy '*' "http://$UP_ADDR/" 2>&1)
rc=$?
ms=$(( ($(date +%s%N) - s) / 1000000 ))
t "a direct connection (bypass) fails (exit $rc)" test "$rc" -ne 0
t "and fails fast (${ms} ms < 3000)" test "$ms" -lt 3000
found=""
for _ in $(seq 10); do
	"$MOAT" denials --json --sandbox "pxb$M" --stage bypass 2>/dev/null |
		grep -F "\"$UP_ADDR\"" | grep -q '"stage":"bypass"' && { found=1; break; }
	sleep 0.1
done
t "moat denials --json shows the bypass within 1 s of the run's end" test -n "$found"
[ -n "$found" ] || diag "$("$MOAT" denials --json 2>&1 | tail -5)"

# --- the 403 body ---------------------------------------------------------
out=$(mrun curl80 "curl -s -m 5 http://upstream.test:7/")
t "the 403 body has error, detail, reason, host, port, binary, next_steps" \
	/usr/bin/python3 -c '
import json, sys
b = json.loads(sys.argv[1])
assert b["error"] == "policy_denied", b
assert b["detail"] == "GET upstream.test:7 not permitted by policy", b["detail"]
assert "upstream.test:7" in b["reason"], b["reason"]
assert b["host"] == "upstream.test" and b["port"] == 7, b
assert b["binary"] == "/usr/bin/curl", b["binary"]
assert isinstance(b["next_steps"], list) and b["next_steps"], b
assert any("policy.local" in s.get("url", "") for s in b["next_steps"]), b
' "$out"
t "denials from the runs are in the store" sh -c \
	"'$MOAT' denials --json --host upstream.test | grep -q '\"binary\":\"/usr/bin/curl\"'"
done_testing
