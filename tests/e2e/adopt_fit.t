#!/bin/bash
# Live restore adopts only a proxy that fits: a moatd restarted with
# other connection caps, or an upgraded moatd (another program file),
# ends the running proxy and starts its own, which enforces the new
# settings (the old one would keep the old caps, or the old code).
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
SB=af$$
P="$OBJ/allow.json"
cat > "$P" <<EOP
{"version":1,"network_policies":{"echo":{"endpoints":[{"host":"upstream.test","port":7}],"binaries":[{"path":"/usr/bin/python3"}]}}}
EOP
moatd_setup "$SB:$P" || { t_fail setup; done_testing; exit 1; }
sed -i 's/^{/{"live_restore":true,/' "$CFG"
on_cleanup "$MOAT shutdown >/dev/null 2>&1; sleep 1; ip netns del moat-$SB; nft delete table inet moat-$SB; \
	for c in /sys/fs/cgroup/*/moat/$SB; do [ -d \$c ] && { echo 1 > \$c/cgroup.kill; rmdir \$c; }; done"
cat > "$OBJ/cap.py" <<'EOPY'
import os, socket, json
addr = os.environ["HTTP_PROXY"].split("//")[1].rstrip("/")
proxy = (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]))
req = b"CONNECT upstream.test:7 HTTP/1.1\r\nHost: upstream.test:7\r\n\r\n"
idle = [socket.create_connection(proxy, timeout=10) for _ in range(3)]
out = []
for _ in range(5):
    s = socket.create_connection(proxy, timeout=10)
    s.sendall(req)
    h = b""
    while b"\r\n\r\n" not in h:
        c = s.recv(1)
        if not c: break
        h += c
    out.append(h.split(b"\r\n")[0].decode())
    s.close()
print(" | ".join(out))
EOPY
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
cp "$OBJ/cap.py" "$OBJ/ws-$SB/cap.py"; chmod 644 "$OBJ/ws-$SB/cap.py"
kill -KILL "$MOATD_PID"; MOATD_PID=""
sleep 0.5
python3 - "$CFG" <<'EOPY'
import json, sys
c = json.load(open(sys.argv[1])); c["proxy"]["max_conns_per_sandbox"] = 3
json.dump(c, open(sys.argv[1], "w"))
EOPY
start_moatd "$CFG" || { t_fail "moatd restarts"; done_testing; exit 1; }
t "the proxy with the old caps is not adopted, and the log says why" \
	grep -q "does not fit (other connection caps): ending it" "$OBJ/moatd.log"
out=$($SSH $SB 'python3 /sandbox/cap.py' 2>&1)
is "the new cap (3 per sandbox) is enforced after the restart" \
	"$(echo "$out" | grep -o '503' | wc -l)" 5

# An upgrade: the next moatd is another file; the running proxy is the
# old program and is not adopted either.
kill -KILL "$MOATD_PID"; MOATD_PID=""
sleep 0.5
cp "$MOATD" "$OBJ/moatd-new" && MOATD="$OBJ/moatd-new"
start_moatd "$CFG" || { t_fail "the upgraded moatd starts"; done_testing; exit 1; }
t "an upgraded moatd does not adopt the old proxy" \
	grep -q "does not fit (another program (moatd was upgraded))" "$OBJ/moatd.log"
out=$($SSH $SB 'python3 /sandbox/cap.py' 2>&1)
is "and its own proxy serves, caps and all" "$(echo "$out" | grep -o '503' | wc -l)" 5
"$MOAT" shutdown >/dev/null 2>&1
for _ in $(seq 50); do kill -0 "$MOATD_PID" 2>/dev/null || break; sleep 0.1; done
MOATD_PID=""
done_testing
