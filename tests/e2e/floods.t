#!/bin/bash
# Floods are bounded per sandbox (limits.* in moatd's config): 50,000
# distinct denied hosts from inside a real sandbox within 60 s leave at
# most limits.denials_per_minute rows a minute and limits.pending_proposals
# pending proposals, and the rest shows up as "N more suppressed" in
# `moat denials` and `moat proposals` (text and --json); policy.local
# proposals are rate-limited per sandbox (429). The store's growth is
# measured and bounded.
. "$(dirname "$0")/lib.sh"
need_root
# Our own sandbox names: another moatd on this machine purges its own.
SB=fl$$
SB2=fa$$
DPM=1000
PP=50
APM=5
moatd_setup $SB $SB2
# The limits, added to the generated config.
/usr/bin/python3 - "$CFG" "$DPM" "$PP" "$APM" <<'EOP'
import json, sys
c = json.load(open(sys.argv[1]))
c["limits"] = {"denials_per_minute": int(sys.argv[2]),
               "pending_proposals": int(sys.argv[3]),
               "agent_proposals_per_minute": int(sys.argv[4])}
json.dump(c, open(sys.argv[1], "w"))
EOP

# Config errors name the field.
sed 's/"denials_per_minute": [0-9]*/"denials_per_minute": 0/' "$CFG" > "$OBJ/bad.json"
out=$("$MOATD" -c "$OBJ/bad.json" --check 2>&1); rc=$?
is "limits.denials_per_minute 0 is refused (exit 100)" "$rc" 100
t "naming the field" sh -c "echo '$out' | grep -q 'limits.denials_per_minute: must be an integer in 1..'"
sed 's/"limits": {/"limits": {"bogus": 1, /' "$CFG" > "$OBJ/bad.json"
t "an unknown limits field is refused by name" sh -c "$MOATD -c $OBJ/bad.json --check 2>&1 | grep -q 'limits.bogus: unknown field'"

start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
cp "$TOP/tests/helpers/flood_client.py" "$OBJ/ws-$SB/" && cp "$TOP/tests/helpers/flood_client.py" "$OBJ/ws-$SB2/"
chmod 644 "$OBJ/ws-$SB/flood_client.py" "$OBJ/ws-$SB2/flood_client.py"
store_kib() { du -sk --apparent-size "$OBJ/var/moat.db" "$OBJ/var/moat.db-wal" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
before=$(store_kib)

# 50,000 distinct names, denied before resolution (no policy has them).
res=$($SSH $SB "python3 flood_client.py hosts 50000 32 60")
diag "flood: $res"
is "50,000 distinct hosts sent and denied within 60 s" \
	"$(echo "$res" | grep -o 'sent=[0-9]*') $(echo "$res" | grep -o '403=[0-9]*')" "sent=50000 403=50000"
# The accounting below holds for however many the client got denied.
denied=$(echo "$res" | grep -o '403=[0-9]*' | cut -d= -f2)

# rows + suppressed must account for every denial (nothing lost silently)
counts() {
	local rows sup
	rows=$($MOAT denials --sandbox $SB --limit 0 --json | grep -vc '"stage":"suppressed"')
	sup=$($MOAT denials --sandbox $SB --limit 0 --json | /usr/bin/python3 -c '
import json, sys
print(sum(o["count"] for o in map(json.loads, sys.stdin) if o.get("stage") == "suppressed"))')
	echo "$rows $sup"
}
for _ in $(seq 100); do
	set -- $(counts)
	[ $(( $1 + $2 )) -ge "${denied:-0}" ] && break
	sleep 0.2
done
rows=$1; sup=$2
diag "stored rows: $rows, suppressed: $sup"
is "every denial is a row or counted as suppressed" "$(( rows + sup ))" "$denied"
t "rows stay under the cap ($rows <= 2 minutes x $DPM)" test "$rows" -le $(( 2 * DPM ))
t "at least one minute's worth was stored ($rows >= $DPM)" test "$rows" -ge "$DPM"
t "moat denials says how many more were suppressed" sh -c \
	"$MOAT denials --sandbox $SB | grep -q '^+ $sup more denials of $SB suppressed'"
t "moat denials --top says it too" sh -c "$MOAT denials --top --sandbox $SB | grep -q 'more denials of $SB suppressed'"
is "the other sandbox has no rows and nothing suppressed" "$($MOAT denials --sandbox $SB2 --json | wc -l)" 0

pend() {
	$MOAT proposals --sandbox "$1" --json | /usr/bin/python3 -c '
import json, sys
a = json.load(sys.stdin)
print(sum(1 for p in a if p["status"] == "pending"),
      sum(p["count"] for p in a if p["status"] == "suppressed" and p["kind"] == sys.argv[1]))' "$2"
}
set -- $(pend $SB proposals)
is "pending proposals stop at the cap" "$1" "$PP"
t "the rest of the stored hosts are counted as suppressed proposals ($2)" test "$2" -ge $(( rows - PP ))
t "moat proposals shows the suppressed row" sh -c "$MOAT proposals --sandbox $SB | grep -q '^+ $2 more proposals for $SB suppressed'"

after=$(store_kib)
diag "store: $before KiB before, $after KiB after ($(( after - before )) KiB for $denied denied hosts)"
t "the store grew by less than 8 MiB ($(( after - before )) KiB)" test $(( after - before )) -lt 8192

# policy.local proposals: a rate per sandbox, answered at once with 429.
min0=$(( $(date +%s) / 60 ))
res=$($SSH $SB2 "python3 flood_client.py propose 40 1 60")
diag "agent proposals one by one: $res"
is "the first $APM are accepted, the rest get 429" \
	"$(echo "$res" | grep -o '202=[0-9]*') $(echo "$res" | grep -o '429=[0-9]*')" "202=$APM 429=$(( 40 - APM ))"
# counts reach the store with moatd's next flush (every 200 ms)
for _ in $(seq 50); do
	set -- $(pend $SB2 agent_proposals)
	[ "$2" = $(( 40 - APM )) ] && break
	sleep 0.1
done
is "$APM agent proposals pending" "$1" "$APM"
is "the refusals are counted" "$2" $(( 40 - APM ))
t "and shown" sh -c "$MOAT proposals --sandbox $SB2 | grep -q '^+ 35 agent proposals from $SB2 refused'"
res=$($SSH $SB "python3 flood_client.py propose 1 1 30")
is "a sandbox at its pending cap: the agent gets 429" "$(echo "$res" | grep -o '429=[0-9]*')" "429=1"
body=$($SSH $SB "curl -s -m 10 -H 'Content-Type: application/json' -d '{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":{\"endpoints\":[{\"host\":\"x.flood.test\",\"port\":443}],\"binaries\":[{\"path\":\"/usr/bin/curl\"}]}}}]}' http://policy.local/v1/proposals")
t "saying why (rate_limited, limits.pending_proposals)" sh -c "echo '$body' | grep -q 'rate_limited' && echo '$body' | grep -q 'limits.pending_proposals'"

# A storm of agent requests does not keep SSH out.
$SSH $SB2 "python3 flood_client.py propose 3000 16 30" > "$OBJ/storm.out" 2>&1 & storm=$!
on_cleanup "kill $storm"
sleep 1
s=$(date +%s%N)
is "ssh logs in during the storm" "$($SSH $SB2 echo in)" in
ms=$(( ($(date +%s%N) - s) / 1000000 ))
diag "ssh login during the agent storm: $ms ms"
t "within 10 s ($ms ms)" test "$ms" -lt 10000
wait $storm
diag "storm: $(cat "$OBJ/storm.out")"
set -- $(pend $SB2 agent_proposals)
# The rate is per calendar minute: each minute the test spanned may
# add its $APM, and no more (3000 requests were made).
mins=$(( $(date +%s) / 60 - min0 + 1 ))
t "at most $APM pending per minute after the storm ($1 in $mins min)" \
	test "$1" -ge "$APM" -a "$1" -le $(( APM * mins ))
stop_moatd
done_testing
