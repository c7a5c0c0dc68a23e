#!/bin/bash
# One source of truth for the active policy, against the real proxy:
# a version the proxy refuses (it cannot serve the sandbox because its
# port is taken) or never answers (stopped) is recorded as refused and
# the store's active version stays what the proxy enforces; `moat
# sandboxes` says MISMATCH loudly while the proxy does not enforce the
# active version, and stops saying it once it does.
. "$(dirname "$0")/lib.sh"
# Our own sandbox name: another moatd on this machine purges its own.
SB=pt$$
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
cat > "$OBJ/allow.json" <<EOP
{"version":1,"network_policies":{"up":{"name":"up",
 "endpoints":[{"host":"upstream.test","port":80}],
 "binaries":[{"path":"/usr/bin/curl"}]}}}
EOP
echo '{"version":1,"network_policies":{}}' > "$OBJ/deny.json"
moatd_setup $SB:"$OBJ/allow.json"

# json_field FIELD: our sandbox's FIELD in `moat sandboxes --json`
json_field() {
	$MOAT sandboxes --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print([s for s in json.load(sys.stdin) if s["name"] == sys.argv[2]][0][sys.argv[1]])' "$1" "$SB"
}
# wait_field FIELD WANT: wait (bounded, 10 s) until FIELD is WANT
wait_field() {
	for _ in $(seq 100); do
		[ "$(json_field "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
active() { $MOAT policy show $SB | head -n 1 | awk '{print $4}' | tr -d ,; }
# has TEXT PATTERN: a fixed string in a value
has() { printf '%s' "$1" | grep -qF -- "$2"; }
proxy_pid() { pgrep -P "$MOATD_PID" -x moat-proxy; }

# Something else holds the proxy port on every address: the proxy
# cannot listen for the sandbox and refuses its policies.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
print("held", flush=True); time.sleep(120)' "$PROXY_PORT" > "$OBJ/holder.out" &
holder=$!
on_cleanup "kill $holder"
for _ in $(seq 50); do grep -q held "$OBJ/holder.out" && break; sleep 0.1; done
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }

t "the proxy could not serve the sandbox" wait_field policy_mismatch True
is "moat sandboxes: the active version is 1" "$(json_field policy_version)" 1
is "the proxy enforces none" "$(json_field proxy_version)" 0
t "and says why" sh -c "$MOAT sandboxes --json | grep -q 'version 1: unknown sandbox'"
out=$($MOAT sandboxes 2>&1); rc=$?
is "moat sandboxes exits 1 on a mismatch" "$rc" 1
t "and says POLICY MISMATCH" has "$out" "POLICY MISMATCH"
t "moatd logged the mismatch" grep -q "MISMATCH: the proxy refused the active policy version 1" "$OBJ/moatd.log"

out=$($MOAT policy set $SB "$OBJ/deny.json" 2>&1); rc=$?
is "a policy the proxy refuses: policy set fails" "$rc" 1
t "saying the proxy refused it" has "$out" "the proxy refused it"
is "the store's active version is still 1" "$(active)" 1
t "version 2 is in the history as refused" sh -c "$MOAT policy history $SB | grep '^   2 ' | grep -q 'REFUSED'"

# Free the port and restart the proxy: it serves the sandbox again.
kill "$holder"; wait "$holder" 2>/dev/null
pp=$(proxy_pid)
t "found the proxy process" test -n "$pp"
[ -n "$pp" ] && kill -KILL "$pp"
t "the restarted proxy installs the active version" wait_field proxy_version 1
is "no mismatch any more" "$(json_field policy_mismatch)" False
t "moat sandboxes exits 0" $MOAT sandboxes
is "what the store calls active is enforced (v1 allows curl)" \
	"$($SSH $SB 'curl -s -m 5 http://upstream.test/')" upstream-ok

# A proxy that does not answer: the same, after the wait.
pp=$(proxy_pid)
kill -STOP "$pp"
on_cleanup "kill -CONT $pp"
s=$(date +%s)
out=$($MOAT policy set $SB "$OBJ/deny.json" 2>&1); rc=$?
e=$(date +%s)
kill -CONT "$pp"
is "a stopped proxy: policy set fails" "$rc" 1
t "saying the proxy did not answer" has "$out" "did not answer"
t "after moatd's wait, not forever ($((e - s)) s)" test $((e - s)) -le 15
is "the store's active version is still 1" "$(active)" 1
t "version 3 is in the history as refused" sh -c "$MOAT policy history $SB | grep '^   3 ' | grep -q 'REFUSED'"
t "the resumed proxy ends on the active version" wait_field proxy_version 1
is "which it enforces (v1 allows curl)" \
	"$($SSH $SB 'curl -s -m 5 http://upstream.test/')" upstream-ok

# The normal case: the proxy installs it, and then the store says so.
t "policy set with a working proxy" $MOAT policy set $SB "$OBJ/deny.json"
is "the new version is active" "$(active)" 4
is "and enforced" "$(json_field proxy_version)" 4
is "by behaviour too (the deny policy refuses curl)" \
	"$($SSH $SB 'curl -s -o /dev/null -w %{http_code} -m 5 http://upstream.test/')" 403
# A policy bigger than the channel's socket buffer: moatd's wait must
# also write out what the proxy has not read yet.
/usr/bin/python3 -c '
import json
print(json.dumps({"version": 1, "network_policies": {
    "r%d" % i: {"name": "r%d" % i,
                "endpoints": [{"host": "h%d.big.test" % i, "port": 443}],
                "binaries": [{"path": "/usr/bin/curl"}]}
    for i in range(4000)}}))' > "$OBJ/big.json"
t "a $(( $(stat -c %s "$OBJ/big.json") / 1024 )) KiB policy is installed" $MOAT policy set $SB "$OBJ/big.json"
is "and active" "$(active)" 5
is "and enforced" "$(json_field proxy_version)" 5
stop_moatd
is "after moatd stops nothing is enforced, and no mismatch is claimed" \
	"$(json_field proxy_version) $(json_field policy_mismatch)" "0 False"
done_testing
