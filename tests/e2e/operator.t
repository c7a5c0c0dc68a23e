#!/bin/bash
# The operator loop end to end: an agent in a live SSH session is denied,
# the operator sees why, approves the proposed rule (public_only: the
# upstream's 10.x address takes allowed_ips too), and the agent's next
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
echo 0 > "$OBJ/n"
# has TEXT PATTERN: grep a fixed string in a value (no shell quoting games)
has() { printf '%s' "$1" | grep -qF -- "$2"; }
# run CMD: run in the session, wait (bounded) for its marker, print output
run() {
	# $(run ...) is a subshell: the counter lives in a file.
	n=$(( $(cat "$OBJ/n") + 1 )); echo $n > "$OBJ/n"
	# The echo ends output that has no newline of its own (curl -w).
	echo "{ $1 ; } 2>&1; echo; echo __done$n" >&7
	for _ in $(seq 150); do grep -qx "__done$n" "$OBJ/out" && break; sleep 0.1; done
	sed -n "/^__done$((n - 1))\$/,/^__done$n\$/p" "$OBJ/out" | grep -v '^__done' | sed '/^$/d'
}
# pending proposal ids (optionally for HOST), from moat proposals --json
pending() {
	$MOAT proposals --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
want = sys.argv[1] if len(sys.argv) > 1 else None
print(" ".join(str(p["id"]) for p in json.load(sys.stdin)
               if p["status"] == "pending" and (want is None or p.get("host") == want)))' "$@"
}
versions() { $MOAT policy history "$1" | grep -c .; }
echo "echo __done0" >&7
sleep 1

body=$(run "curl -s -w ' code=%{http_code}' http://upstream.test/")
t "denied curl gets 403" has "$body" 'code=403'
t "the 403 body is policy_denied JSON" has "$body" '"error":"policy_denied"'
t "the 403 body names the host" has "$body" '"host":"upstream.test"'
t "the 403 body points the agent at policy.local" has "$body" 'policy.local/v1/proposals' 

for _ in $(seq 30); do $MOAT denials --json | grep -q upstream.test && break; sleep 0.1; done
t "moat denials shows it with the binary" sh -c "$MOAT denials --json | grep upstream.test | grep -q /usr/bin/curl"
t "moat denials table is readable" sh -c "$MOAT denials | grep -q upstream.test"

id=""
for _ in $(seq 50); do
	id=$(pending upstream.test | cut -d' ' -f1)
	[ -n "$id" ] && break
	sleep 0.1
done
t "a proposal appears for upstream.test:80" test -n "$id"
t "the proposal shows its rule and hash" sh -c "$MOAT proposals | grep -q upstream.test"

t "the proposal's notes say the rule reaches public addresses only" \
	sh -c "$MOAT proposals | grep -q 'note: upstream.test is a host name: the rule is public_only'"

t "moat approve it" $MOAT approve "$id"
# upstream.test maps to 10.x (hosts override): a name from a proposal
# reaches public addresses only, so the approved rule still refuses it.
body=""
for _ in $(seq 20); do
	body=$(run "curl -s -m 5 -w ' code=%{http_code}' http://upstream.test/")
	has "$body" ssrf_denied && break
	sleep 0.1
done
t "after approval the 10.x address is refused: ssrf_denied" has "$body" '"error":"ssrf_denied"'
t "the refusal names public_only and what to add" has "$body" \
	"the endpoint is public_only, as rules from proposals are: add allowed_ips covering $UP_ADDR"
# The operator opens that one address by hand.
$MOAT policy show box | grep -v '^#' | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for r in d["network_policies"].values():
    for e in r["endpoints"]:
        if e.get("host") == "upstream.test":
            e["allowed_ips"] = [sys.argv[1] + "/32"]
json.dump(d, open(sys.argv[2], "w"))' "$UP_ADDR" "$OBJ/opened.json"
t "moat policy set adds allowed_ips" $MOAT policy set box "$OBJ/opened.json"
start=$(date +%s%N)
ok=""
for _ in $(seq 20); do
	r=$(run "curl -s -m 5 http://upstream.test/")
	if [ "$r" = upstream-ok ]; then ok=1; break; fi
	sleep 0.1
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t "the same curl in the same session succeeds once allowed_ips covers it" test -n "$ok"
t "within 2 s of the change (took ${ms} ms)" test "$ms" -lt 2000

is "policy history shows the three versions" "$(versions box)" 3
t "policy diff shows the added rule" sh -c "$MOAT policy diff box 1 2 | grep -q '^+.*upstream.test'"
t "and the added allowed_ips" sh -c "$MOAT policy diff box 2 3 | grep -q '^+.*$UP_ADDR/32'"

echo '{"version":1,"network_policies":{"x":{"endpoints":[{"host":"*","port":80}],"binaries":[{"path":"/usr/bin/curl"}]}}}' > "$OBJ/bad.json"
t_not "an invalid policy set is refused" $MOAT policy set box "$OBJ/bad.json"
t "the refusal names the problem" sh -c "$MOAT policy set box $OBJ/bad.json 2>&1 | grep -q 'network_policies.x'"
is "the old version still decides" "$(run "curl -s -m 5 http://upstream.test/")" upstream-ok

# policy.local from inside the sandbox
cur=$(run "curl -s -m 5 http://policy.local/v1/policy/current")
t "policy.local/v1/policy/current answers the sandbox's policy" has "$cur" upstream.test
run "curl -s -m 5 http://upstream.test:7/" >/dev/null
den=$(run "curl -s -m 5 'http://policy.local/v1/denials?last=5'")
t "policy.local/v1/denials lists this sandbox's denials" has "$den" upstream.test
oden=$($SSH other "curl -s -m 5 'http://policy.local/v1/denials?last=100'")
t "another sandbox gets its own denials list" has "$oden" '"denials"'
t_not "and cannot read this sandbox's" has "$oden" upstream.test
prop='{"intent_summary":"need the echo port","operations":[{"addRule":{"ruleName":"echo7","rule":{"name":"echo7","endpoints":[{"host":"upstream.test","port":7}],"binaries":[{"path":"/usr/bin/curl"}]}}}]}'
pr=$(run "curl -s -m 5 -w ' code=%{http_code}' -H 'Content-Type: application/json' -d '$prop' http://policy.local/v1/proposals")
t "an agent proposal is accepted (202)" has "$pr" 'code=202' 
sleep 0.5
t "it shows up as pending, marked agent-requested" sh -c "$MOAT proposals --json | /usr/bin/python3 -c '
import json, sys
sys.exit(0 if any(p[\"origin\"] == \"agent\" and p[\"status\"] == \"pending\" and \"echo7\" in p[\"rule\"] for p in json.load(sys.stdin)) else 1)'"

# Sandbox text never reaches the operator's terminal raw: an agent's
# intent_summary with a hide-text SGR, an OSC title, a C1 CSI and a bidi
# override, as JSON escapes in the body.
evil='{"intent_summary":"need it \u001b[8mhidden\u001b[0m \u001b]0;pwned\u0007 \u009b31m \u202eend","operations":[{"addRule":{"ruleName":"echo9","rule":{"name":"echo9","endpoints":[{"host":"upstream.test","port":9}],"binaries":[{"path":"/usr/bin/curl"}]}}}]}'
pr=$(run "curl -s -m 5 -w ' code=%{http_code}' -H 'Content-Type: application/json' -d '$evil' http://policy.local/v1/proposals")
t "an agent proposal quoting escape sequences is accepted (202)" has "$pr" 'code=202'
for _ in $(seq 50); do $MOAT proposals | grep -q echo9 && break; sleep 0.1; done
$MOAT proposals > "$OBJ/props.txt" 2>&1
$MOAT proposals --json > "$OBJ/props.json" 2>&1
t "moat proposals lists it" grep -q echo9 "$OBJ/props.txt"
t "the hide-text sequence is shown, escaped" grep -qF '\x1b[8mhidden\x1b[0m' "$OBJ/props.txt"
t "the OSC title sequence is shown, escaped" grep -qF '\x1b]0;pwned\x07' "$OBJ/props.txt"
t "C1 and bidi controls are shown, escaped" grep -qF '\u009b31m \u202eend' "$OBJ/props.txt"
t "no raw control byte in moat proposals" no_raw "$OBJ/props.txt"
t "no raw control byte in moat proposals --json" no_raw "$OBJ/props.json"
t "--json is valid JSON holding the same escaped text" /usr/bin/python3 -c '
import json, sys
ps = [p for p in json.load(open(sys.argv[1])) if "echo9" in p["rule_json"]]
sys.exit(0 if len(ps) == 1 and "\\x1b[8mhidden\\x1b[0m \\x1b]0;pwned\\x07" in ps[0]["reason"] else 1)' "$OBJ/props.json"
# An agent cannot drown the listing: a long intent_summary is cut in the
# text view (saying so), whole in --json.
long=$(printf 'A%.0s' $(seq 3000))
prop='{"intent_summary":"'"$long"'TAILMARK","operations":[{"addRule":{"ruleName":"echo10","rule":{"name":"echo10","endpoints":[{"host":"upstream.test","port":10}],"binaries":[{"path":"/usr/bin/curl"}]}}}]}'
printf '%s' "$prop" > "$OBJ/ws-box/long.json" && chmod 644 "$OBJ/ws-box/long.json"
pr=$(run "curl -s -m 5 -w ' code=%{http_code}' -H 'Content-Type: application/json' --data-binary @long.json http://policy.local/v1/proposals")
t "an agent proposal with a 3000-byte intent_summary is accepted (202)" has "$pr" 'code=202'
for _ in $(seq 50); do $MOAT proposals | grep -q echo10 && break; sleep 0.1; done
$MOAT proposals > "$OBJ/props.txt" 2>&1
$MOAT proposals --json > "$OBJ/props.json" 2>&1
t "the text view cuts it, saying where the rest is" sh -c "awk '/^    reason: AAAA/' '$OBJ/props.txt' | grep -q 'cut: 3008 bytes in all, see moat proposals --json' && ! grep -q TAILMARK '$OBJ/props.txt'"
t "no reason line is longer than 700 bytes" sh -c "! awk 'length(\$0) > 700 && /^    reason: /' '$OBJ/props.txt' | grep -q ."
t "--json has the whole text" grep -q TAILMARK "$OBJ/props.json"

# The rule line of the text output, read back as JSON, is the stored rule
# that approve merges, and the hash shown is its hash.
t "the rule shown is exactly the rule approve merges" /usr/bin/python3 -c '
import json, sys
ps = {p["id"]: p for p in json.load(open(sys.argv[2]))}
cur, seen = None, 0
for line in open(sys.argv[1]):
    if line.startswith("#"):
        cur = ps[int(line[1:].split()[0])]
    elif line.startswith("    rule: "):
        if json.loads(line[10:]) != json.loads(cur["rule_json"]): sys.exit(1)
        seen += 1
    elif line.startswith("    hash: "):
        if line[10:].strip() != cur["rule_hash"]: sys.exit(1)
sys.exit(0 if seen == len(ps) and seen > 0 else 1)' "$OBJ/props.txt" "$OBJ/props.json"

# concurrent approvals never lose a version
before=$(versions box)
ids=$(pending)
set -- $ids
if [ $# -ge 2 ]; then
	$MOAT approve "$1" & a=$!
	$MOAT approve "$2" & b=$!
	wait $a; ra=$?; wait $b; rb=$?
	after=$(versions box)
	is "two concurrent approvals both succeed" "$ra$rb" 00
	is "and add exactly two versions" "$after" "$((before + 2))"
else
	t_fail "two pending proposals for the concurrency test (have: $ids)"
fi
exec 7>&-

# After the approvals (an agent's intent may be quoted in notes), every
# other view of sandbox text is escaped too.
$MOAT policy history box > "$OBJ/hist.txt" 2>&1
$MOAT policy show box > "$OBJ/show.txt" 2>&1
$MOAT denials > "$OBJ/den.txt" 2>&1
$MOAT denials --json > "$OBJ/den.json" 2>&1
$MOAT sessions > "$OBJ/sess.txt" 2>&1
$MOAT sandboxes --json > "$OBJ/sb.json" 2>&1
for f in hist.txt show.txt den.txt den.json sess.txt sb.json moatd.log; do
	t "no raw control byte in $f" no_raw "$OBJ/$f"
done

# The OCSF-style export: denials, sessions, policy changes and approvals.
ev="$OBJ/events.jsonl"
has_class() { /usr/bin/python3 -c '
import json, sys
want = sys.argv[2]
sys.exit(0 if any(str(json.loads(l).get("class_uid")) == want and sys.argv[3] in l
                  for l in open(sys.argv[1]) if l.strip()) else 1)' "$ev" "$1" "$2"; }
t "export: the denial as Network Activity (4001)" has_class 4001 upstream.test
t "export: sessions as SSH Activity (4007)" has_class 4007 box
t "export: policy versions as Device Config State Change (5019)" has_class 5019 '"proposal"'
t "export: every line is one JSON object" /usr/bin/python3 -c '
import json, sys
[json.loads(l) for l in open(sys.argv[1])]' "$ev"
done_testing
