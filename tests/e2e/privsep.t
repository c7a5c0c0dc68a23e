#!/bin/bash
# Privilege separation (docs/ssh.md, docs/proxy.md): the process that
# holds a pre-auth SSH connection has no root, no capabilities,
# no_new_privs, seccomp, an empty root and only its socket, its monitor
# channel and /dev/null; max_startups and the per-source limit close a
# flood before any process exists for it, and a real login still works.
# The proxy runs as its own uid with only the capabilities it needs,
# no_new_privs and seccomp, and holds none of moatd's fds.
. "$(dirname "$0")/lib.sh"
need_root
moatd_setup psep
# Small caps, so a flood reaches them: 10:30:40 overall, 5 per address.
python3 - "$CFG" <<'EOP'
import json, sys
c = json.load(open(sys.argv[1]))
c["max_startups"] = "10:30:40"
c["max_startups_per_source"] = 5
json.dump(c, open(sys.argv[1], "w"))
EOP
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
t_ok "moatd starts"
is "a login works" "$($SSH psep echo in)" in

# hold N connections from ADDR open after the banner, until killed
hold() {	# ADDR N: returns once all N connect()s returned
	rm -f "$OBJ/held"
	/usr/bin/python3 - "$1" "$2" "$SSH_PORT" > "$OBJ/held" <<'EOP' &
import socket, sys, time
addr, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keep = []
for i in range(n):
    s = socket.socket()
    s.bind((addr, 0))
    try:
        s.connect(("127.0.0.1", port))
        keep.append(s)
    except OSError:
        s.close()
print("held", flush=True)
time.sleep(60)
EOP
	HOLD_PID=$!
	on_cleanup "kill $HOLD_PID"
	for _ in $(seq 300); do grep -q held "$OBJ/held" 2>/dev/null && break; sleep 0.1; done
}
# the session processes (children of moatd's ssh zygote) and monitors
zyg=$(pgrep -P "$MOATD_PID" -x moat-ssh-zygote | head -n 1)
sessions() { pgrep -P "$zyg" -x moat-ssh-sess | wc -l; }
monitors() { pgrep -P "$MOATD_PID" -x moat-ssh-mon | wc -l; }
t "the zygote runs" test -n "$zyg"

hold 127.0.0.1 1
for _ in $(seq 50); do [ "$(sessions)" -ge 1 ] && break; sleep 0.1; done
sp=$(ss -Htnp state established "( sport = :$SSH_PORT )" | grep -o 'moat-ssh-sess",pid=[0-9]*' | head -n 1 | cut -d= -f2)
t "a session process holds the pre-auth connection" test -n "$sp"
st=/proc/$sp/status
is "pre-auth: uid is not root" "$(awk '/^Uid:/{print ($2 != 0 && $3 != 0 && $4 != 0 && $5 != 0)}' $st)" 1
is "pre-auth: gid is not root" "$(awk '/^Gid:/{print ($2 != 0 && $3 != 0)}' $st)" 1
is "pre-auth: no effective capabilities" "$(awk '/^CapEff:/{print $2}' $st)" 0000000000000000
is "pre-auth: no permitted capabilities" "$(awk '/^CapPrm:/{print $2}' $st)" 0000000000000000
is "pre-auth: empty bounding set" "$(awk '/^CapBnd:/{print $2}' $st)" 0000000000000000
is "pre-auth: no_new_privs" "$(awk '/^NoNewPrivs:/{print $2}' $st)" 1
is "pre-auth: seccomp filter mode" "$(awk '/^Seccomp:/{print $2}' $st)" 2
is "pre-auth: its root is the empty directory" "$(readlink /proc/$sp/root)" "$OBJ/var/empty"
t "pre-auth: the empty directory is empty" test -z "$(ls -A "$OBJ/var/empty")"
fds=$(for f in /proc/$sp/fd/*; do readlink "$f"; done | sed 's/\[[0-9]*\]//' | sort | tr '\n' ' ')
is "pre-auth: only /dev/null, its socket and its monitor channel" "$fds" \
	"/dev/null /dev/null /dev/null socket: socket: "
tcp=$(ss -Htnp state established "( sport = :$SSH_PORT )" | grep -c "pid=$sp,")
unx=$(ss -Hxp | grep -c "pid=$sp,")
is "pre-auth: one TCP socket and one unix socket" "$tcp/$unx" 1/1
mp=$(ss -Hxp | grep "pid=$sp," | awk '{print $8}' | head -n 1)
mon=$(ss -Hxp | awk -v i="$mp" '$6 == i' | grep -o 'moat-ssh-mon",pid=[0-9]*' | cut -d= -f2 | head -n 1)
t "its monitor is found" test -n "$mon"
mfds=$(for f in /proc/$mon/fd/*; do readlink "$f"; done)
t_not "the monitor has no store fd" grep -q 'moat.db' <<<"$mfds"
t_not "the monitor has no host key fd" grep -q 'ssh_host' <<<"$mfds"
is "the monitor is root (it does the privileged work)" "$(awk '/^Uid:/{print $2}' /proc/$mon/status)" 0
zst=/proc/$zyg/status
is "the zygote: not root, no capabilities, seccomp" \
	"$(awk '/^Uid:/{u=$2} /^CapEff:/{c=$2} /^Seccomp:/{s=$2} END{print (u!=0) "/" c "/" s}' $zst)" \
	"1/0000000000000000/2"
zfds=$(for f in /proc/$zyg/fd/*; do readlink "$f"; done)
t_not "the zygote holds no key file, store, netns or control socket" \
	grep -qE 'ssh_host|moat.db|net:|moatd.sock|relay.sock' <<<"$zfds"
kill $HOLD_PID; wait $HOLD_PID 2>/dev/null

# a flood from one address: at most 5 pre-auth processes for it
hold 127.0.0.2 500
max=0
for _ in $(seq 20); do n=$(sessions); [ "$n" -gt "$max" ] && max=$n; sleep 0.1; done
t "500 connections from one address: at most 5 session processes ($max)" test "$max" -le 5 -a "$max" -ge 1
t "and at most 5 monitors ($(monitors))" test "$(monitors)" -le 5
is "an authorized login from another address still works" "$($SSH psep echo still-in)" still-in
t "the operator's log says why connections were dropped" grep -q "max_startups: dropped a connection from 127.0.0.2" "$OBJ/moatd.log"
kill $HOLD_PID; wait $HOLD_PID 2>/dev/null

# a flood from many addresses: at most max_startups' full (40)
/usr/bin/python3 - "$SSH_PORT" <<'EOP' &
import socket, sys, time
keep = []
for i in range(500):
    s = socket.socket()
    s.bind(("127.0.%d.%d" % (3 + i // 200, 2 + i % 200), 0))
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        keep.append(s)
    except OSError:
        s.close()
time.sleep(60)
EOP
FLOOD=$!
on_cleanup "kill $FLOOD"
max=0
for _ in $(seq 40); do n=$(sessions); [ "$n" -gt "$max" ] && max=$n; sleep 0.1; done
t "500 connections from 500 addresses: at most 40 session processes ($max)" test "$max" -le 40 -a "$max" -ge 10
kill $FLOOD; wait $FLOOD 2>/dev/null
for _ in $(seq 100); do [ "$(sessions)" -eq 0 ] && break; sleep 0.1; done
is "once the flood is gone, a login works" "$($SSH psep echo again)" again

# the proxy
px=$(pgrep -P "$MOATD_PID" -x moat-proxy | head -n 1)
t "the proxy runs" test -n "$px"
pst=/proc/$px/status
is "proxy: not root" "$(awk '/^Uid:/{print ($2 != 0 && $3 != 0 && $4 != 0 && $5 != 0)}' $pst)" 1
# CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_BPF (39): docs/proxy.md
is "proxy: only the capabilities it needs" "$(awk '/^CapEff:/{print $2}' $pst)" 0000008000080004
is "proxy: and no more permitted or bounding" \
	"$(awk '/^CapPrm:/{p=$2} /^CapBnd:/{b=$2} /^CapInh:/{i=$2} /^CapAmb:/{a=$2} END{print p, b, i, a}' $pst)" \
	"0000008000080004 0000008000080004 0000000000000000 0000000000000000"
is "proxy: no_new_privs" "$(awk '/^NoNewPrivs:/{print $2}' $pst)" 1
is "proxy: seccomp filter mode" "$(awk '/^Seccomp:/{print $2}' $pst)" 2
pfds=$(for f in /proc/$px/fd/*; do readlink "$f"; done)
t_not "proxy: no store fd" grep -q 'moat.db' <<<"$pfds"
t_not "proxy: no netns fd" grep -q '^net:' <<<"$pfds"
t_not "proxy: no host key or relay secret" grep -qE 'ssh_host|relay.secret' <<<"$pfds"
t_not "proxy: not holding the SSH listener" sh -c "ss -Hltnp '( sport = :$SSH_PORT )' | grep -q 'pid=$px,'"
t_not "proxy: not holding the control or relay socket" \
	sh -c "ss -Hxlp | grep -E 'moatd.sock|relay.sock' | grep -q 'pid=$px,'"
is "and the proxy still serves (a denial through it)" \
	"$($SSH psep 'curl -s -o /dev/null -w %{http_code} -m 10 http://nowhere.test/')" 403

stop_moatd
done_testing
