#!/bin/bash
# Open-file limits and connection caps. moatd started from a shell whose
# soft limit is 1024 raises its own and the proxy's, and one sandbox then
# holds 2,000 tunnels at once without a failure; sessions get the
# starting soft limit back. A small configured cap answers 503 with JSON
# naming the cap, logged once per burst.
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { t_fail "upstream test host"; done_testing; exit 1; }
SB="lim$$" # not "box": other runs on this machine start sandboxes too

# Bad values name the field; nothing starts.
for bad in '"max_open_files":10' '"proxy":{"max_conns_per_sandbox":0}' '"proxy":{"max_conns":"x"}'; do
	echo '{'"$bad"',"listen":[{"addr":"127.0.0.1","port":1}],"sandboxes":[{"name":"a"}]}' > "$OBJ/bad.json"
	out=$("$MOATD" -c "$OBJ/bad.json" --check 2>&1); rc=$?
	field=$(echo "$bad" | sed 's/^"proxy":{"/proxy./; s/^"//; s/".*//')
	case "$rc $out" in "100 "*"bad.json: $field: must be an integer in"*) t_ok "config $bad refused, naming $field";;
	*) t_fail "config $bad refused, naming $field"; diag "$rc $out";; esac
done
cat > "$OBJ/tun.json" <<EOP
{"version":1,"network_policies":{"echo":{"name":"echo",
 "endpoints":[{"host":"upstream.test","port":7}],
 "binaries":[{"path":"/usr/bin/python3"}]}}}
EOP
moatd_setup "$SB:$OBJ/tun.json"

# The hard limit rises to max_open_files (default 1,048,576, at most
# fs.nr_open) with CAP_SYS_RESOURCE; without it (some containers' root)
# it stays, and the soft limit still rises to it.
nr_open=$(cat /proc/sys/fs/nr_open)
if (( (0x$(awk '/^CapEff/ {print $2}' /proc/self/status) >> 24) & 1 )); then
	want=$(( nr_open < 1048576 ? nr_open : 1048576 ))
else
	want=$(ulimit -Hn)
	diag "no CAP_SYS_RESOURCE here: the hard limit stays $want"
fi
ulimit -S -n 1024
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
t_ok "moatd starts from a shell with ulimit -S -n 1024"
limits() { awk '/^Max open files/ {print $4, $5}' "/proc/$1/limits"; }
is "moatd's open files: soft and hard $want" "$(limits "$MOATD_PID")" "$want $want"
proxy=$(ps --ppid "$MOATD_PID" -o pid=,comm= | awk '$2 == "moat-proxy" {print $1}')
[ -n "$proxy" ] && t_ok "the proxy process runs (pid $proxy)" || t_fail "the proxy process runs"
is "the proxy's open files: soft and hard $want" "$(limits "${proxy:-0}")" "$want $want"
is "a session gets the soft limit moatd started with, and its hard one" \
	"$($SSH $SB 'ulimit -Sn; ulimit -Hn' | tr '\n' ' ')" "1024 $want "

# One sandbox, 2,000 tunnels open at once, each carrying data.
cat > "$OBJ/ws-$SB/tunnels.py" <<'EOF'
import json, os, resource, socket, sys

def head(s):
    h = b""
    while b"\r\n\r\n" not in h:
        b = s.recv(1)
        if not b:
            break
        h += b
    return h

def body(s, h):
    n = 0
    for line in h.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            break
        b += c
    return b

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
addr = os.environ["HTTP_PROXY"].split("//")[1].rstrip("/")
proxy = (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]))
req = b"CONNECT upstream.test:7 HTTP/1.1\r\nHost: upstream.test:7\r\n\r\n"
mode, n = sys.argv[1], int(sys.argv[2])
if mode == "tunnels":
    socks, fail, why = [], 0, ""
    for i in range(n):
        try:
            s = socket.create_connection(proxy, timeout=20)
            s.sendall(req)
            h = head(s)
            if not h.startswith(b"HTTP/1.1 200"):
                fail += 1
                why = why or h[:120].decode(errors="replace")
                s.close()
                continue
            socks.append(s)
        except OSError as e:
            fail += 1
            why = why or str(e)
    bad = 0
    for i, s in enumerate(socks):
        msg = b"tunnel %d\n" % i
        try:
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                c = s.recv(len(msg) - len(got))
                if not c:
                    break
                got += c
            bad += got != msg
        except OSError:
            bad += 1
    print("open %d fail %d bad %d %s" % (len(socks), fail, bad, why))
else:
    # Hold n idle connections (the cap), then try five more at once.
    idle = [socket.create_connection(proxy, timeout=10) for _ in range(n)]
    out = []
    for _ in range(5):
        s = socket.create_connection(proxy, timeout=10)
        s.sendall(req)
        h = head(s)
        out.append((h.split(b"\r\n")[0].decode(), body(s, h).decode()))
        s.close()
    print(json.dumps(out))
EOF
out=$($SSH $SB 'python3 /sandbox/tunnels.py tunnels 2000' 2>&1)
is "2,000 tunnels from one sandbox at once: all open, none failed, all carry data" \
	"$(echo "$out" | awk '{print $1, $2, $3, $4, $5, $6}')" "open 2000 fail 0 bad 0"
[ "$(echo "$out" | awk '{print $4}')" = 0 ] || diag "$out"

# A small configured cap: 503 with JSON naming it, one log line a burst.
stop_moatd
python3 - "$CFG" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["proxy"]["max_conns_per_sandbox"] = 3
json.dump(c, open(sys.argv[1], "w"))
EOF
start_moatd "$CFG" || { t_fail "moatd starts with max_conns_per_sandbox 3"; done_testing; exit 1; }
out=$($SSH $SB 'python3 /sandbox/tunnels.py cap 3' 2>&1)
is "over proxy.max_conns_per_sandbox (3): five tries, five 503s with the cap in JSON" \
	"$(echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(" ".join(sorted(set("%s %s %s %s" % (l.split()[1], b["error"], b["cap"], b["limit"])
    for l, b in ((l, json.loads(b)) for l, b in r)))), len(r))' 2>&1)" \
	"503 too_many_connections proxy.max_conns_per_sandbox 3 5"
is "one log line for the burst" \
	"$(grep -c "proxy.max_conns_per_sandbox = 3 reached" "$OBJ/moatd.log")" 1
cleanup
done_testing
