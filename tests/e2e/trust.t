#!/bin/bash
# Trust decisions outlive the proxy and moatd: a binary trusted on first
# use, then changed, stays "binary changed" across a proxy restart and a
# moatd restart (the hashes live in the store's trust table); an
# operator's approval of the new hash is kept the same way.
. "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || { t_fail "curl is installed"; done_testing; exit 1; }
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
# A copy of curl in the workspace, so the sandbox can change it.
cat > "$OBJ/pol.json" <<EOP
{"version":1,"network_policies":{"up":{"endpoints":[{"host":"upstream.test","port":80}],"binaries":[{"path":"/sandbox/bin/fetch"}]}}}
EOP
moatd_setup trustbox:"$OBJ/pol.json"
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }

fetch() { $SSH trustbox 'bin/fetch -s -m 5 -w " code=%{http_code}" http://upstream.test/' 2>&1; }
# rows NAME: the store's trust rows as "binary source sha12" lines
rows() {
	/usr/bin/python3 - "$MOAT_STORE" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for b, s, h in db.execute("SELECT binary, source, sha256 FROM trust WHERE sandbox = 'trustbox' ORDER BY binary"):
    print(b, s, h[:12])
PY
}
has() { printf '%s' "$1" | grep -qF -- "$2"; }
# kept SOURCE: the store has fetch's row, from SOURCE
kept() { rows | grep -q "^/sandbox/bin/fetch $1 "; }
# until CMD...: retry CMD (bounded: 5 s)
until_ok() { for _ in $(seq 50); do "$@" && return 0; sleep 0.1; done; return 1; }

$SSH trustbox 'mkdir -p bin && cp /usr/bin/curl bin/fetch'
out=$(fetch)
t "first use: the workspace binary is trusted" has "$out" upstream-ok
t "moatd keeps the first-use hash in the store" until_ok kept tofu
first=$(rows | awk '{print $3}')

$SSH trustbox 'printf x >> bin/fetch'
out=$(fetch)
t "changed binary denied" has "$out" 'binary changed: /sandbox/bin/fetch'

# The proxy process dies; moatd starts a new one.
old=$(pgrep -P "$MOATD_PID" -x moat-proxy | head -1)
t "the proxy process runs" test -n "$old"
kill -KILL "$old" 2>/dev/null
# new_proxy: a proxy process other than $old runs under moatd
new_proxy() {
	p=$(pgrep -P "$MOATD_PID" -x moat-proxy | head -1)
	[ -n "$p" ] && [ "$p" != "$old" ]
}
t "moatd restarts the proxy" until_ok new_proxy
out=""
for _ in $(seq 20); do out=$(fetch); has "$out" code= && break; sleep 0.2; done
t "after a proxy restart the changed binary is still denied" has "$out" 'binary changed: /sandbox/bin/fetch'
t_not "and never reached the upstream" has "$out" upstream-ok

# moatd itself restarts.
stop_moatd
start_moatd "$CFG" || { t_fail "moatd starts again"; done_testing; exit 1; }
out=$(fetch)
t "after a moatd restart the changed binary is still denied" has "$out" 'binary changed: /sandbox/bin/fetch'
is "the kept hash is still the first one" "$(rows | awk '{print $2, $3}')" "tofu $first"

# The operator approves the new hash: kept as well.
id=""
for _ in $(seq 50); do
	id=$($MOAT proposals --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print(" ".join(str(p["id"]) for p in json.load(sys.stdin)
               if p["status"] == "pending" and p["origin"] == "binary-changed"))' | cut -d' ' -f1)
	[ -n "$id" ] && break
	sleep 0.1
done
t "a binary-changed proposal appears" test -n "$id"
t "the operator approves it" $MOAT approve "$id"
t "the approved hash is kept as the operator's" until_ok kept operator
out=$(fetch)
t "the approved binary is allowed" has "$out" upstream-ok
stop_moatd
start_moatd "$CFG" || { t_fail "moatd starts a third time"; done_testing; exit 1; }
out=$(fetch)
t "after a moatd restart the approved binary is still allowed" has "$out" upstream-ok
$SSH trustbox 'printf y >> bin/fetch'
out=$(fetch)
t "and another change is denied again" has "$out" 'binary changed: /sandbox/bin/fetch'
done_testing
