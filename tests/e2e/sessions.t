#!/bin/bash
# Session rows follow their connection processes: a SIGKILLed connection
# process closes its row within a second, saying so; the other
# connection's row stays running; rows a killed moatd left running are
# closed when moatd starts again.
. "$(dirname "$0")/lib.sh"
# Our own sandbox name: another moatd on this machine purges its own.
SB=se$$
need_root
moatd_setup $SB
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }

# Rows are told apart by start order: each step starts one session and
# waits for its row. open_rows: ids of rows still running in sandbox $SB.
open_rows() {
	$MOAT sessions --sandbox $SB --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print(" ".join(str(r["id"]) for r in map(json.loads, sys.stdin) if "end_ms" not in r))'
}
# row FIELD ID: one field of session ID ("" when absent)
row() {
	$MOAT sessions --sandbox $SB --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for r in map(json.loads, sys.stdin):
    if r["id"] == int(sys.argv[2]):
        print(r.get(sys.argv[1], ""))' "$1" "$2"
}
# conn_pid SLEEPARG: the connection process serving "sleep SLEEPARG":
# the nearest process above the sleep that is moatd's child.
conn_pid() {
	local p
	p=$(pgrep -x -f "sleep $1" | head -n 1)
	while [ -n "$p" ] && [ "$p" != 1 ]; do
		[ "$(awk '{print $4}' /proc/$p/stat 2>/dev/null)" = "$MOATD_PID" ] && { echo "$p"; return 0; }
		p=$(awk '{print $4}' /proc/$p/stat 2>/dev/null)
	done
	return 1
}
# wait_open N: wait (bounded) until N rows are running; print their ids
wait_open() {
	local ids=""
	for _ in $(seq 100); do
		ids=$(open_rows)
		[ "$(echo $ids | wc -w)" -ge "$1" ] && break
		sleep 0.1
	done
	echo "$ids"
}

$SSH $SB "exec sleep 4701" & keep=$!
on_cleanup "kill $keep"
keep_id=$(wait_open 1)
is "the first session's row is running" "$(echo $keep_id | wc -w)" 1
$SSH $SB "exec sleep 4702" & victim=$!
on_cleanup "kill $victim"
ids=$(wait_open 2)
victim_id=""
for i in $ids; do [ "$i" != "$keep_id" ] && victim_id=$i; done
t "the second session's row is running too" test -n "$victim_id"

vpid=""
for _ in $(seq 50); do vpid=$(conn_pid 4702) && break; sleep 0.1; done
t "found the second session's connection process (a child of moatd)" \
	test -n "$vpid" -a "$vpid" != "$MOATD_PID"
[ -n "$vpid" ] && [ "$vpid" != "$MOATD_PID" ] && kill -KILL "$vpid"
start=$(date +%s%N)
closed=""
for _ in $(seq 40); do
	[ -n "$(row end_ms "$victim_id")" ] && { closed=1; break; }
	sleep 0.05
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t "SIGKILL of the connection process closes its row" test -n "$closed"
t "within a second (took $ms ms)" test "$ms" -lt 1000
is "the row says the connection was killed" "$(row end_reason "$victim_id")" "connection killed (KILL)"
is "and records no exit status" "$(row exit_status "$victim_id")" ""
t "moat sessions shows it as lost" sh -c "$MOAT sessions --sandbox $SB | grep -q 'lost: connection killed (KILL)'"
is "the other connection's row is still running" "$(open_rows)" "$keep_id"
wait "$victim" 2>/dev/null

# A session that ends by itself keeps its exit status, no reason.
$SSH $SB 'exit 3'
# ssh returns before moatd has read the end record: wait for the row.
for _ in $(seq 50); do
	last=$($MOAT sessions --sandbox $SB --limit 1 --json | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.readline()); print(r.get("exit_status"), r.get("end_reason", "none"))')
	[ "$last" = "3 none" ] && break
	sleep 0.1
done
is "a normal end keeps its status and has no end_reason" "$last" "3 none"

# moatd dies with a session open; the next moatd closes the stale row.
kill -KILL "$MOATD_PID"; wait "$MOATD_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$MOATD_PID" 2>/dev/null || break; sleep 0.1; done
MOATD_PID=""
kill "$keep" 2>/dev/null; wait "$keep" 2>/dev/null
is "after moatd was killed the row still says running" "$(open_rows)" "$keep_id"
start_moatd "$CFG" || { t_fail "moatd restarts"; done_testing; exit 1; }
is "the restarted moatd closed it" "$(open_rows)" ""
is "saying why" "$(row end_reason "$keep_id")" "moatd restarted"

# A clean stop closes what is running.
$SSH $SB "exec sleep 4703" & last=$!
on_cleanup "kill $last"
last_id=$(wait_open 1)
stop_moatd
wait "$last" 2>/dev/null
is "a clean stop leaves no running row" "$(open_rows)" ""
is "saying so" "$(row end_reason "$last_id")" "moatd stopped"
done_testing
