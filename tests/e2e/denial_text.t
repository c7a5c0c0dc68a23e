#!/bin/bash
# No denial is lost for its text: a real binary copied inside a sandbox
# to a 4 KiB path of control bytes (each escaped sixfold in the proxy's
# JSON line) and to a path that is not UTF-8 makes denied connections;
# both reach `moat denials` with the path kept as far as it fits,
# escaped, and marked (cut / not UTF-8); no proposal names a mangled
# path; nothing reaches the terminal raw.
. "$(dirname "$0")/lib.sh"
# Our own sandbox name: another moatd on this machine purges its own.
SB=dt$$
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
# curl may reach upstream.test: a copy of it elsewhere may not, and the
# reason quotes the copy's path.
cat > "$OBJ/pol.json" <<EOP
{"version":1,"network_policies":{"up":{"name":"up",
 "endpoints":[{"host":"upstream.test","port":80}],
 "binaries":[{"path":"/usr/bin/curl"}]}}}
EOP
moatd_setup $SB:"$OBJ/pol.json"
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }

# 16 directories of 250 bytes 0x01 under the workspace, then curl:
# 4029 bytes, under PATH_MAX.
out=$($SSH $SB bash -s <<'EOS'
c=$(printf '\001%.0s' $(seq 250))
p=/sandbox
for i in $(seq 16); do p="$p/$c"; done
mkdir -p "$p" && cp /usr/bin/curl "$p/curl" || exit 1
echo "long=$(printf '%s' "$p/curl" | wc -c)"
"$p/curl" -s -o /dev/null -m 20 -w 'long=%{http_code}\n' http://upstream.test/
bad=$(printf '/sandbox/bad\377\376')
mkdir -p "$bad" && cp /usr/bin/curl "$bad/curl" || exit 1
"$bad/curl" -s -o /dev/null -m 20 -w 'bad=%{http_code}\n' http://upstream.test/
curl -s -m 20 -w ' curl=%{http_code}\n' http://upstream.test/
EOS
)
has() { printf '%s' "$1" | grep -qF -- "$2"; }
t "the copy sits at a 4 KiB path" has "$out" "long=4029"
t "the copy at the 4 KiB path is denied (403)" has "$out" "long=403"
t "the copy at the path that is not UTF-8 is denied (403)" has "$out" "bad=403"
t "curl itself is allowed" has "$out" "curl=200"

for _ in $(seq 50); do
	[ "$($MOAT denials --sandbox $SB --json 2>/dev/null | grep -c curl)" -ge 2 ] && break
	sleep 0.1
done
$MOAT denials --sandbox $SB --json > "$OBJ/den.json" 2>&1
$MOAT denials --sandbox $SB > "$OBJ/den.txt" 2>&1
# row WHICH: the JSON row of the long-path or the bad-path denial
row() { /usr/bin/python3 -c '
import json, sys
for r in map(json.loads, open(sys.argv[1])):
    b = r["binary"]
    if (sys.argv[2] == "long" and b.startswith("/sandbox/\\x01") or
            sys.argv[2] == "bad" and b.startswith("/sandbox/bad")):
        print(json.dumps(r)); break' "$OBJ/den.json" "$1"; }
long=$(row long)
bad=$(row bad)
t "the 4 KiB path reaches moat denials" test -n "$long"
t "the path that is not UTF-8 reaches moat denials" test -n "$bad"
# field ROW EXPR: a Python expression over the row r, true or not
field() { printf '%s' "$1" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2"; }
t "it keeps the start and the end of the path" \
	field "$long" 'r["binary"].endswith("\\x01/curl") and "..." in r["binary"]'
t "its binary is marked cut" field "$long" '"binary" in r["cut"]'
t "its reason quotes the path, escaped" \
	field "$long" '"but binary " + chr(39) + "/sandbox/\\x01\\x01" in r["reason"]'
t "the bad bytes read \\xNN" field "$bad" 'r["binary"] == "/sandbox/bad\\xff\\xfe/curl"'
t "its binary is marked not UTF-8" field "$bad" '"binary" in r["escaped"] and not r["cut"]'
t "the table marks the cut row" grep -qF '[cut: binary] ' "$OBJ/den.txt"
t "the table marks the escaped row" grep -qF '[not UTF-8: binary, reason] ' "$OBJ/den.txt"
t "the table shows the escaped path" grep -qF '/sandbox/bad\xff\xfe/curl' "$OBJ/den.txt"
t "no raw control byte in moat denials" no_raw "$OBJ/den.txt"
t "no raw control byte in moat denials --json" no_raw "$OBJ/den.json"
$MOAT denials --sandbox $SB --top > "$OBJ/top.txt" 2>&1
t "no raw control byte in moat denials --top" no_raw "$OBJ/top.txt"
# A rule naming a mangled path could never match: none is proposed.
sleep 1
t "no proposal names a cut or escaped path" /usr/bin/python3 -c '
import json, sys
ps = json.loads(sys.argv[1])
sys.exit(1 if [p for p in ps if "\\x" in p["binary"]] else 0)' "$($MOAT proposals --status all --json)"
t "moatd's log has nothing raw" no_raw "$OBJ/moatd.log"
stop_moatd
done_testing
