#!/bin/bash
# A burst of sessions loses no session row: the monitors' records reach
# moatd as datagrams on STATE/sessions.sock, whose queue is short
# (net.unix.max_dgram_qlen, 10 here); a record that finds it full is
# retried, not dropped. 40 parallel `ssh SB true`: as many rows with
# exit status 0 as logins that succeeded.
. "$(dirname "$0")/lib.sh"
need_root
SB=sb$$
moatd_setup "$SB" || { t_fail "setup"; done_testing; exit 1; }
# Every login of the burst is let in (the caps are tested elsewhere).
sed -i 's/^{/{"max_startups":"200","max_startups_per_source":0,/' "$CFG"
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
N=40
pids=""
for i in $(seq $N); do
	( $SSH -n $SB true </dev/null >/dev/null 2>&1 && echo ok > "$OBJ/ok.$i" ) &
	pids="$pids $!"
done
wait $pids
okn=$(ls "$OBJ"/ok.* 2>/dev/null | wc -l)
t "most logins of the burst succeed ($okn of $N)" test "$okn" -ge $((N * 3 / 4))
rows=""
for _ in $(seq 50); do
	rows=$($MOAT sessions --json --limit 0 | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print(sum(1 for s in rows if s.get("sandbox") == sys.argv[1]
          and s.get("exit_status") == 0))' "$SB" 2>&1)
	[ "$rows" = "$okn" ] && break
	sleep 0.1
done
is "every session of the burst has its row, ended with status 0" "$rows" "$okn"
[ -n "$T_LAST_FAILED" ] && diag "$(grep -a 'not delivered\|dropped' "$OBJ/moatd.log" | head -3)"
stop_moatd
done_testing
