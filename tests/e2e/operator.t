#!/bin/bash
# The operator loop end to end: an agent in a live SSH session is denied,
# the operator sees why, approves the proposed rule, and the agent's next
# try in the same session works, with nothing restarted.
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
moatd_setup box other
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }

# One long-lived session, fed through a fifo: "the same session".
mkfifo "$OBJ/in"
( $SSH -T box bash < "$OBJ/in" > "$OBJ/out" 2>&1 ) & sess=$!
on_cleanup "kill $sess"
exec 7> "$OBJ/in"
n=0
# run CMD: run in the session, wait (bounded) for its marker, print output
run() {
	n=$((n + 1))
	echo "{ $1 ; } 2>&1; echo __done$n" >&7
	for _ in $(seq 150); do grep -q "__done$n" "$OBJ/out" && break; sleep 0.1; done
	sed -n "/__done$((n - 1))\$/,/__done$n\$/p" "$OBJ/out" | grep -v '__done'
}
echo "echo __done0" >&7
sleep 1

body=$(run "curl -s -w ' code=%{http_code}' http://upstream.test/")
t "denied curl gets 403" sh -c "echo '$body' | grep -q 'code=403'"
t "the 403 body is policy_denied JSON naming the host" sh -c "echo '$body' | grep -q '\"error\":\"policy_denied\"' && echo '$body' | grep -q upstream.test"
t "the 403 body points the agent at policy.local" sh -c "echo '$body' | grep -q 'policy.local/v1/proposals'"

for _ in $(seq 30); do $MOAT denials --json | grep -q upstream.test && break; sleep 0.1; done
t "moat denials shows it with the binary" sh -c "$MOAT denials --json | grep upstream.test | grep -q /usr/bin/curl"
t "moat denials table is readable" sh -c "$MOAT denials | grep -q upstream.test"

id=""
for _ in $(seq 50); do
	id=$($MOAT proposals --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for l in sys.stdin:
    p = json.loads(l)
    if p.get("host") == "upstream.test" and p.get("status") == "pending": print(p["id"]); break')
	[ -n "$id" ] && break
	sleep 0.1
done
t "a proposal appears for upstream.test:80" test -n "$id"
t "the proposal shows its rule and hash" sh -c "$MOAT proposals | grep -q upstream.test"

t "moat approve it" $MOAT approve "$id"
start=$(date +%s%N)
ok=""
for _ in $(seq 20); do
	r=$(run "curl -s -m 5 http://upstream.test/")
	if [ "$r" = upstream-ok ]; then ok=1; break; fi
	sleep 0.1
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t "the same curl in the same session succeeds after approval" test -n "$ok"
t "within 2 s of the approval (took ${ms} ms)" test "$ms" -lt 2000

hist=$($MOAT policy history box)
t "policy history shows both versions" sh -c "echo '$hist' | grep -q ' 2 ' || echo '$hist' | grep -qE '^ *2'"
t "policy diff shows the added rule" sh -c "$MOAT policy diff box 1 2 | grep -q '^+.*upstream.test'"

echo '{"version":1,"network_policies":{"x":{"endpoints":[{"host":"*","port":80}],"binaries":[{"path":"/usr/bin/curl"}]}}}' > "$OBJ/bad.json"
t_not "an invalid policy set is refused" $MOAT policy set box "$OBJ/bad.json"
t "the refusal names the problem" sh -c "$MOAT policy set box $OBJ/bad.json 2>&1 | grep -q 'network_policies.x'"
is "the old version still decides" "$(run "curl -s -m 5 http://upstream.test/")" upstream-ok

# policy.local from inside the sandbox
cur=$(run "curl -s -m 5 http://policy.local/v1/policy/current")
t "policy.local/v1/policy/current answers the sandbox's policy" sh -c "echo '$cur' | grep -q upstream.test"
run "curl -s -m 5 http://upstream.test:7/" >/dev/null
den=$(run "curl -s -m 5 'http://policy.local/v1/denials?last=5'")
t "policy.local/v1/denials lists this sandbox's denials" sh -c "echo '$den' | grep -q upstream.test"
oden=$($SSH other "curl -s -m 5 'http://policy.local/v1/denials?last=100'")
t "another sandbox cannot read them" sh -c "echo '$oden' | grep -q denials && ! echo '$oden' | grep -q upstream.test"
prop='{"intent_summary":"need the echo port","operations":[{"addRule":{"ruleName":"echo7","rule":{"name":"echo7","endpoints":[{"host":"upstream.test","port":7}],"binaries":[{"path":"/usr/bin/curl"}]}}}]}'
pr=$(run "curl -s -m 5 -w ' code=%{http_code}' -H 'Content-Type: application/json' -d '$prop' http://policy.local/v1/proposals")
t "an agent proposal is accepted (202)" sh -c "echo '$pr' | grep -q 'code=202'"
sleep 0.5
t "it shows up as pending, marked agent-requested" sh -c "$MOAT proposals --json | grep echo7 | grep -q '\"origin\":\"agent\"'"

# concurrent approvals never lose a version
before=$($MOAT policy history box --json | wc -l)
ids=$($MOAT proposals --json | /usr/bin/python3 -c '
import json, sys
print(" ".join(str(p["id"]) for p in map(json.loads, sys.stdin) if p["status"] == "pending"))')
set -- $ids
if [ $# -ge 2 ]; then
	$MOAT approve "$1" & a=$!
	$MOAT approve "$2" & b=$!
	wait $a; ra=$?; wait $b; rb=$?
	after=$($MOAT policy history box --json | wc -l)
	is "two concurrent approvals both succeed" "$ra$rb" 00
	is "and add exactly two versions" "$after" "$((before + 2))"
else
	t_fail "two pending proposals for the concurrency test (have: $ids)"
fi
exec 7>&-
done_testing
