#!/bin/bash
# moat denials and moat sessions against a store written by a helper
# (no moatd needed): tables, filters, JSON lines, --top, a missing
# store, and reading while a writer commits.
. "$(dirname "$0")/lib.sh"
FILL="$MOAT_BUILD/tests/helpers/store_fill"
[ -x "$FILL" ] && [ -x "$MOAT" ] || { echo "1..0 # SKIP build store_fill and moat first"; exit 0; }
DB="$OBJ/moat.db"

out=$("$MOAT" denials --store "$OBJ/none.db" 2>&1); rc=$?
is "missing store exits 111" "$rc" 111
case "$out" in *"$OBJ/none.db"*) t_ok "missing store: message names the path";;
*) t_fail "missing store: message names the path"; diag "$out";; esac

t "fill the fixture" "$FILL" "$DB"
out=$("$MOAT" denials --store "$DB")
is "table header" "$(echo "$out" | head -1 | tr -s ' ')" "TIME SANDBOX STAGE BINARY HOST PORT REASON"
is "eight denials, newest first" "$(echo "$out" | tail -n +2 | awk '{print $6}' | tr '\n' ' ')" \
	"10.9.9.9 git.test pypi.test evil.test evil.test evil.test old.test old.test "
# The reason is the last column and is never cut: it says which half of
# the decision failed, which is what the operator needs to read.
case "$out" in *"cuts"*) t_ok "a long reason is shown whole";; *) t_fail "a long reason is shown whole";; esac
is "--sandbox box" "$(MOAT_STORE="$DB" "$MOAT" denials --sandbox box | tail -n +2 | wc -l)" 5
is "--since 1h drops two-day-old rows" "$("$MOAT" denials --store "$DB" --since 1h | tail -n +2 | wc -l)" 6
is "--host and --limit" "$("$MOAT" denials --store "$DB" --host evil.test --limit 2 | tail -n +2 | wc -l)" 2
is "--binary" "$("$MOAT" denials --store "$DB" --binary /usr/bin/git | tail -n +2 | awk '{print $5}')" /usr/bin/git
json=$("$MOAT" denials --store "$DB" --json --sandbox other)
is "--json: one object per line with every field" \
	"$(echo "$json" | python3 -c 'import json,sys; o=[json.loads(l) for l in sys.stdin]; print(len(o), o[0]["stage"], o[0]["port"], o[0]["ancestors"], o[0]["pid"], sorted(o[0]))')" \
	"1 bypass 22 ['/bin/bash'] 7 ['ancestors', 'binary', 'cut', 'escaped', 'host', 'id', 'ip', 'pid', 'policy_version', 'port', 'protocol', 'reason', 'sandbox', 'sha256', 'stage', 'time', 'ts_ms', 'uid']"
top=$("$MOAT" denials --store "$DB" --top)
is "--top header" "$(echo "$top" | head -1 | tr -s ' ')" "COUNT BINARY HOST PORT LAST SEEN FIRST SEEN"
is "--top: biggest group first" "$(echo "$top" | sed -n 2p | awk '{print $1, $2, $3, $4}')" "3 /usr/bin/curl evil.test 443"
is "--top --since 1h" "$("$MOAT" denials --store "$DB" --top --since 1h | grep -c old.test)" 0
is "--top --json" "$("$MOAT" denials --store "$DB" --top --json --limit 1 | python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print(o["count"], o["host"])')" "3 evil.test"
"$MOAT" denials --store "$DB" --since 1x >/dev/null 2>&1; is "bad --since is a usage error" "$?" 100

s=$("$MOAT" sessions --store "$DB")
is "sessions header" "$(echo "$s" | head -1 | tr -s ' ')" "ID SANDBOX KIND WHO FROM START DURATION EXIT"
is "sessions newest first with exit" "$(echo "$s" | tail -n +2 | awk '{print $3, $NF}' | tr '\n' ',')" \
	"pty-shell running,exec TERM,shell 0,"
is "sessions --sandbox --limit" "$("$MOAT" sessions --store "$DB" --sandbox box --limit 1 | tail -n +2 | awk '{print $3}')" exec
is "sessions --json" "$("$MOAT" sessions --store "$DB" --json | python3 -c 'import json,sys; o=[json.loads(l) for l in sys.stdin]; print(len(o), "end_ms" in o[0], o[1]["exit_signal"], o[2]["exit_status"])')" "3 False TERM 0"

# A live writer: every read succeeds and sees the count grow.
"$FILL" "$DB" --writer 3 & wpid=$!
on_cleanup "kill $wpid"
fails=0; prev=0; grew=0
for i in $(seq 1 40); do
	# The exit status is moat's own: no pipe inside the substitution.
	out=$("$MOAT" denials --store "$DB" --sandbox live --limit 0 --json 2>"$OBJ/read.err"); rc=$?
	if [ "$rc" != 0 ]; then
		fails=$((fails + 1)); diag "read $i: exit $rc: $(head -c 300 "$OBJ/read.err")"
	fi
	n=$(printf '%s\n' "$out" | grep -c '^{')
	[ "$n" -gt "$prev" ] && grew=$((grew + 1)); prev=$n
	kill -0 $wpid 2>/dev/null || break
	sleep 0.05
done
wait $wpid; wrc=$?
is "writer finished" "$wrc" 0
is "every read during writes succeeded" "$fails" 0
[ "$grew" -ge 2 ] && t_ok "reads saw new rows ($grew times)" || t_fail "reads saw new rows ($grew times)"
cleanup
done_testing
