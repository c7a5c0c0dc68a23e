#!/bin/bash
# Live restore: with "live_restore": true, SIGTERM and SIGKILL of moatd
# leave the sandboxes and the proxy running and the next moatd adopts
# them (same init, same processes, new logins at once; an SSH session
# running `sleep 3; curl; echo` completes and its end is recorded; a
# tunnel opened before flows on; a denial while moatd was down is
# recorded after it);
# a sandbox whose init died while
# moatd was down, or that left the config, is purged and nothing of it
# stays; `moat sandboxes stop`, `moat shutdown` and a SIGTERM without
# live restore tear down as before; a policy approved just before a
# crash is the one enforced after it.
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }

A=lra
B=lrb
cat > "$OBJ/deny.json" <<EOP
{"version":1,"network_policies":{}}
EOP
cat > "$OBJ/allow.json" <<EOP
{"version":1,"network_policies":{"up":{"endpoints":[{"host":"upstream.test","port":80}],"binaries":[{"path":"/usr/bin/curl"}]},
 "echo":{"endpoints":[{"host":"upstream.test","port":7}],"binaries":[{"path":"/usr/bin/python3"}]}}}
EOP
# An agent that outlives every moatd: a tunnel through the proxy to the
# upstream's echo port, one round trip every 0.2 s, logged; when the host
# drops deny.now into the workspace, one request the policy denies.
cat > "$OBJ/agent.py" <<'EOPY'
import os, socket, time
host, port = os.environ["HTTP_PROXY"].split("//")[1].rstrip("/").split(":")
log = open("/sandbox/agent.log", "a", buffering=1)
def connect(target):
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b: break
        head += b
    return s, head.split(b" ")[1].decode() if b" " in head else "none"
try:
    t, code = connect(b"upstream.test:7")
    assert code == "200", code
    end = time.time() + 90
    n = 0
    while time.time() < end and not os.path.exists("/sandbox/agent.stop"):
        n += 1
        t.sendall(b"%d\n" % n)
        got = b""
        while not got.endswith(b"\n"):
            b = t.recv(64)
            if not b: raise Exception("tunnel closed")
            got += b
        assert got == b"%d\n" % n, got
        log.write("ok %d %.3f\n" % (n, time.time()))
        if os.path.exists("/sandbox/deny.now") and not os.path.exists("/sandbox/deny.done"):
            _, c = connect(b"upstream.test:81")
            log.write("denied %s\n" % c)
            open("/sandbox/deny.done", "w").close()
        time.sleep(0.2)
    log.write("end\n")
except Exception as e:
    log.write("ERR %r\n" % (e,))
EOPY
moatd_setup "$A:$OBJ/allow.json" "$B:$OBJ/deny.json"
# live_restore on (the file moatd_setup wrote, one field more)
sed -i 's/^{/{"live_restore":true,/' "$CFG"
grep -q '"live_restore":true' "$CFG" || { t_fail "config has live_restore"; done_testing; exit 1; }
# Whatever happens, nothing of ours stays behind.
on_cleanup "$MOAT shutdown >/dev/null 2>&1; sleep 1; for n in $A $B; do \
	ip netns del moat-\$n; nft delete table inet moat-\$n; \
	for c in /sys/fs/cgroup/*/moat/\$n; do [ -d \$c ] && { echo 1 > \$c/cgroup.kill; rmdir \$c; }; done; done"

init_pid() { # NAME: the host pid of the sandbox's init, from moatd's log
	grep -o "sandbox $1 [a-z]*: proxy [^,]*, init pid [0-9]*" "$OBJ/moatd.log" |
		tail -n 1 | awk '{print $NF}'
}
alive() { kill -0 "$1" 2>/dev/null; }
leftovers() { # NAME: what of the sandbox exists, one word each
	local n=$1 out=""
	[ -e "/run/netns/moat-$n" ] && out="$out netns"
	ip link show dev "mh-$n" >/dev/null 2>&1 && out="$out veth"
	nft list table inet "moat-$n" >/dev/null 2>&1 && out="$out nft"
	for c in /sys/fs/cgroup/*/moat/$n; do [ -d "$c" ] && out="$out cgroup:$c"; done
	[ -e "$OBJ/var/sandboxes/$n/sandbox.state" ] && out="$out record"
	echo "$out"
}
# The kernel deletes a torn-down veth with its netns, a moment later.
left_settled() {
	local out
	for _ in $(seq 50); do out=$(leftovers "$1"); [ -z "$out" ] && break; sleep 0.1; done
	echo "$out"
}
# start_moatd appends nothing: keep every moatd's log apart
restart() { mv "$OBJ/moatd.log" "$OBJ/moatd.log.$1"; start_moatd "$CFG"; }
wait_gone() { for _ in $(seq 100); do alive "$1" || return 0; sleep 0.1; done; return 1; }

proxy_pid() { grep -o "proxy started (pid [0-9]*" "$OBJ"/moatd.log* | head -n 1 | grep -o '[0-9]*$'; }
oks() { grep -c '^ok ' "$WS/agent.log" 2>/dev/null; }
# wait_oks N: until the agent logged more than N round trips (bounded)
wait_oks() { for _ in $(seq 100); do [ "$(oks)" -gt "$1" ] && return 0; sleep 0.1; done; return 1; }
WS="$OBJ/ws-$A"

start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
is "a login works" "$($SSH $A echo hi)" hi
pa=$(init_pid $A); pb=$(init_pid $B); pp=$(proxy_pid)
t "moatd logged both inits and the proxy" test -n "$pa" -a -n "$pb" -a -n "$pp"
# Processes that must outlive moatd: detached, in the sandbox.
$SSH $A 'setsid nohup sleep 300 >/dev/null 2>&1 < /dev/null & echo started' >/dev/null
cp "$OBJ/agent.py" "$WS/agent.py" && chmod 644 "$WS/agent.py"
$SSH $A 'setsid nohup python3 /sandbox/agent.py >/dev/null 2>&1 < /dev/null &'
on_cleanup "touch $WS/agent.stop"
$SSH $A 'echo kept > /sandbox/mark'
t "the agent's tunnel flows" wait_oks 3

# session_start N: an SSH session that spans a restart, in the background
session_start() {
	$SSH $A 'sleep 3; curl -s -m 5 http://upstream.test/; echo done' \
		> "$OBJ/sess$1.out" 2>&1 &
	SESS_PID=$!
	# its session row is there (the monitor spawned it) before the kill
	for _ in $(seq 50); do
		SESS_ROW=$($MOAT sessions --sandbox $A --json 2>/dev/null |
			/usr/bin/python3 -c 'import json,sys; print(" ".join(str(s["id"]) for s in map(json.loads, sys.stdin) if not s.get("end_ms")))')
		[ -n "$SESS_ROW" ] && [ "${SESS_ROW#* }" = "$SESS_ROW" ] && return 0
		sleep 0.1
	done
	return 1
}
# session_check N WHAT: it completed right, and its row says exit 0
session_check() {
	local rc=0 row
	for _ in $(seq 150); do kill -0 "$SESS_PID" 2>/dev/null || break; sleep 0.1; done
	wait "$SESS_PID" || rc=$?
	is "$2: the session completed (exit 0)" "$rc" 0
	is "$2: its output is whole" "$(tr '\n' ' ' < "$OBJ/sess$1.out")" "upstream-ok done "
	for _ in $(seq 50); do
		row=$($MOAT sessions --sandbox $A --json | /usr/bin/python3 -c '
import json, sys
r = [s for s in map(json.loads, sys.stdin) if str(s["id"]) == sys.argv[1]][0]
print(r.get("end_ms", 0) > 0, r.get("exit_status"), r.get("end_reason", ""))' "$SESS_ROW")
		[ "${row%% *}" = True ] && break
		sleep 0.1
	done
	is "$2: its end reached the new moatd (exit 0, not lost)" "$row" "True 0 "
}

# 1. SIGTERM with live restore: everything stays, the proxy too.
t "a session that spans the restart starts" session_start 1
kill -TERM "$MOATD_PID"; wait_gone "$MOATD_PID"; MOATD_PID=""
t "SIGTERM: init of $A still runs" alive "$pa"
t "SIGTERM: the proxy still runs" alive "$pp"
is "SIGTERM: the network, nft table, cgroup and record of $A stay" \
	"$(leftovers $A | grep -o 'netns\|veth\|nft\|record' | tr '\n' ' ')" "netns veth nft record "
t "moatd said so" grep -q "left running for the next moatd" "$OBJ/moatd.log"
n=$(oks)
t "moatd down: the tunnel flows on" wait_oks "$n"
# A denial while no moatd runs: the proxy holds it for the next one.
touch "$WS/deny.now"
for _ in $(seq 50); do [ -e "$WS/deny.done" ] && break; sleep 0.1; done
is "moatd down: a request the policy denies is denied" "$(grep -o 'denied [0-9]*' "$WS/agent.log")" "denied 403"
t_not "it is not in the store yet" sh -c "$MOAT denials --sandbox $A | grep -q ':81'"
restart 1 || { t_fail "moatd restarts"; done_testing; exit 1; }
t "the next moatd adopted $A" grep -q "sandbox $A adopted: .*init pid $pa," "$OBJ/moatd.log"
t "and $B" grep -q "sandbox $B adopted: .*init pid $pb," "$OBJ/moatd.log"
t "and the proxy, with the denial it held" grep -q "proxy adopted (pid $pp): 2 sandboxes kept with their tunnels; [1-9][0-9]* lines held" "$OBJ/moatd.log"
is "a login right after works" "$($SSH $A echo again)" again
session_check 1 "across SIGTERM"
got=""
for _ in $(seq 50); do got=$($MOAT denials --sandbox $A 2>/dev/null | grep -c 'upstream.test.*81'); [ "$got" -ge 1 ] && break; sleep 0.1; done
is "the denial from the restart window is recorded" "$got" 1
n=$(oks)
t "the tunnel opened before the restart flows after it" wait_oks "$n"
is "the detached process lives on" "$($SSH $A 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" " " | grep -o "sleep 300" | head -n 1')" "sleep 300"
is "the workspace is the same" "$($SSH $A cat /sandbox/mark)" kept
t "moat sandboxes works" $MOAT sandboxes
is "a denial is still a denial (nft rebuilt, proxy serves it)" \
	"$($SSH $B 'curl -s -o /dev/null -w %{http_code} -m 5 http://upstream.test/')" 403

# 2. SIGKILL; a policy approved just before it is active after it.
t "policy set" $MOAT policy set $B "$OBJ/allow.json"
is "it allows at once" "$($SSH $B 'curl -s -m 5 http://upstream.test/')" upstream-ok
t "a session that spans the crash starts" session_start 2
kill -KILL "$MOATD_PID"; wait_gone "$MOATD_PID"; MOATD_PID=""
t "SIGKILL: init of $A still runs" alive "$pa"
t "SIGKILL: the proxy still runs" alive "$pp"
n=$(oks)
t "moatd killed: the tunnel flows on" wait_oks "$n"
restart 2 || { t_fail "moatd restarts after SIGKILL"; done_testing; exit 1; }
t "adopted after SIGKILL" grep -q "sandbox $A adopted: .*init pid $pa," "$OBJ/moatd.log"
t "the proxy too" grep -q "proxy adopted (pid $pp)" "$OBJ/moatd.log"
# The adopted proxy is the confined one (docs/proxy.md, "Privileges"),
# and its control socket is moatd's alone.
is "the adopted proxy: its uid, no_new_privs, seccomp" \
	"$(awk '/^Uid:/{u=$2} /^NoNewPrivs:/{n=$2} /^Seccomp:/{s=$2} END{print u, n, s}' /proc/$pp/status)" "59998 1 2"
t "its control socket is there" test -S "$OBJ/var/proxy.sock"
t_not "a sandbox cannot connect to it" $SSH $A "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"$OBJ/var/proxy.sock\")'"
session_check 2 "across SIGKILL"
is "the approved policy is enforced after the crash" \
	"$($SSH $B 'curl -s -m 5 http://upstream.test/')" upstream-ok
n=$(oks)
t "the tunnel still flows" wait_oks "$n"
t_not "and never broke" grep -q ERR "$WS/agent.log"

# 3. Init killed while moatd is down; B dropped from the config.
touch "$WS/agent.stop"
kill -TERM "$MOATD_PID"; wait_gone "$MOATD_PID"; MOATD_PID=""
kill -KILL "$pa"; wait_gone "$pa"
cp "$CFG" "$OBJ/two.json"
/usr/bin/python3 - "$CFG" "$B" <<'EOPY'
import json, sys
c = json.load(open(sys.argv[1]))
c["sandboxes"] = [s for s in c["sandboxes"] if s["name"] != sys.argv[2]]
json.dump(c, open(sys.argv[1], "w"))
EOPY
restart 3 || { t_fail "moatd restarts"; done_testing; exit 1; }
t "the dead sandbox was not adopted, and the log says why" \
	grep -q "sandbox $A: not adopted (sandbox $A: its init (pid $pa) is gone)" "$OBJ/moatd.log"
pa2=$(init_pid $A)
t "$A runs again with a new init" test -n "$pa2" -a "$pa2" != "$pa"
is "and serves logins" "$($SSH $A echo fresh)" fresh
t "the proxy dropped the dead sandbox's listener and serves the new one" \
	grep -q "proxy adopted (pid $pp): 0 sandboxes kept" "$OBJ/moatd.log"
t "the sandbox no longer configured was purged, logged" \
	grep -q "sandbox $B is no longer in the config: purging it" "$OBJ/moatd.log"
t "its init is gone" wait_gone "$pb"
is "nothing of it stays (netns, veth, nft, cgroup, record)" "$(left_settled $B)" ""

# 4. moat sandboxes stop / start.
t "moat sandboxes stop" $MOAT sandboxes stop $A
t "its init is gone" wait_gone "$pa2"
is "nothing of it stays" "$(left_settled $A)" ""
t_not "a login fails while it is stopped" $SSH $A true
t "moat sandboxes start" $MOAT sandboxes start $A
is "a login works again" "$($SSH $A echo back)" back

# 5. moat shutdown tears down, live restore or not.
pa3=$(init_pid $A)
t "moat shutdown" $MOAT shutdown
t "moatd exits" wait_gone "$MOATD_PID"; MOATD_PID=""
t "the sandbox's init is gone" wait_gone "$pa3"
t "the proxy is gone" wait_gone "$pp"
t_not "and its control socket" test -e "$OBJ/var/proxy.sock"
is "nothing of it stays" "$(left_settled $A)" ""

# 6. Without live restore a SIGTERM tears down as before.
cp "$OBJ/two.json" "$CFG"
sed -i 's/"live_restore":true,//' "$CFG"
restart 4 || { t_fail "moatd starts without live restore"; done_testing; exit 1; }
pa4=$(init_pid $A)
t "a fresh sandbox" test -n "$pa4"
kill -TERM "$MOATD_PID"; wait_gone "$MOATD_PID"; MOATD_PID=""
t "SIGTERM without live restore: init is gone" wait_gone "$pa4"
is "nothing stays" "$(left_settled $A)$(left_settled $B)" ""
done_testing
