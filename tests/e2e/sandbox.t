#!/bin/sh
# The sandbox, through `moat run`: every confinement case of
# tests/helpers/confine.c, exit status passthrough, the environment, the
# network refusals, and that nothing is left behind (netns, links, nft
# tables, cgroups, mounts) after runs that succeed and runs that fail.
. "$(dirname "$0")/lib.sh"
need_root
CONFINE="$MOAT_BUILD/tests/helpers/confine"
[ -x "$CONFINE" ] || { echo "1..0 # SKIP $CONFINE not built"; exit 0; }
# The build tree is not in a sandbox's view unless a policy lists it.
HELPERS=$(cd "$MOAT_BUILD/tests/helpers" && pwd -P)
CONFINE="$HELPERS/confine"
# Sandbox names of this test: short (veth names must fit IFNAMSIZ).
P="st$(($$ % 100000))"
N=0
nm() { N=$((N + 1)); echo "$P$N"; }

cat > "$OBJ/small.json" <<EOF
{"version":1,"resources":{"memory_mb":64,"pids_max":64},"network_policies":{},
 "filesystem_policy":{"read_only":["$HELPERS"]}}
EOF
cat > "$OBJ/base.json" <<EOF
{"version":1,"network_policies":{},"filesystem_policy":{"read_only":["$HELPERS"]}}
EOF
cat > "$OBJ/uid1000.json" <<EOF
{"version":1,"network_policies":{},"filesystem_policy":{"read_only":["$HELPERS"]},
 "process":{"run_as_user":"1000"}}
EOF
BASE="-p $OBJ/base.json"
cat > "$OBJ/hard.json" <<'EOF'
{"version":1,"landlock":{"compatibility":"hard_requirement"},
 "filesystem_policy":{"read_only":["/no/such/path/for/moat"]},
 "network_policies":{}}
EOF

# What this test's sandboxes could leave behind, one line per object.
traces() {
	ip netns list 2>/dev/null | grep "moat-$P" | awk '{print "netns", $1}'
	ip -o link 2>/dev/null | awk -F': ' '{print $2}' | grep -E "^m[hs]-$P" |
		sed 's/^/link /'
	nft list tables 2>/dev/null | grep "moat-$P" | sed 's/^/nft /'
	ls -d /sys/fs/cgroup/*/moat/$P* 2>/dev/null | sed 's/^/cgroup /'
	grep "$P" /proc/mounts | awk '{print "mount", $2}'
}
on_cleanup "for d in /sys/fs/cgroup/*/moat/$P*; do rmdir \$d; done"

# confine CASE [ARGS]: one case in a fresh sandbox; expects exit 0.
confine() {
	c=$1; shift
	out=$("$MOAT" run --name "$(nm)" $BASE -- "$CONFINE" "$c" "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then t_ok "confine $c"; else
		t_fail "confine $c (exit $rc)"; diag "$out"; fi
}
# confine_rc RC CASE [ARGS]: the case must end with status RC.
confine_rc() {
	want=$1; c=$2; shift 2
	out=$("$MOAT" run --name "$(nm)" ${POLICY:-$BASE} -- "$CONFINE" "$c" "$@" 2>&1)
	is "confine $c ends with $want" "$?" "$want"
	[ -n "$out" ] && diag "$out"
}

before=$(traces)

for c in raw_socket packet_socket netlink_other netlink_route_ok write_usr \
    write_etc write_outside_workspace write_workspace symlink_shadow \
    setuid_copy ptrace_outside unshare_user mount setns keyctl bpf \
    io_uring_setup perf_event_open tiocsti clone3_enosys personality \
    seccomp id ip_link_down fds caps; do
	confine "$c"
done
confine proc_hidden moat
confine proc_mem
name=$(nm)
out=$("$MOAT" run --name "$name" $BASE -- "$CONFINE" hostname "$name" 2>&1)
is "hostname is the sandbox name" "$?" 0

POLICY="-p $OBJ/small.json"
out=$("$MOAT" run --name "$(nm)" $POLICY -- "$CONFINE" fork_bomb 2>&1)
is "fork bomb stops at pids_max" "$?" 0
diag "$out"
confine_rc 137 memory_hog 256
out=$("$MOAT" run --name "$(nm)" $POLICY -- sh -c 'dd if=/dev/zero \
    of=/tmp/f bs=1M count=100 2>/dev/null; du -m /tmp/f | cut -f1' 2>&1)
rc=$?
# Either the tmpfs is full at its size (ENOSPC), or, when the sandbox's
# own processes already use part of the limit (an ASan build's init), the
# memory cgroup kills the writer: /tmp never outgrows memory_mb.
if [ $rc -eq 0 ] && [ -n "$out" ] && [ "$out" -le 64 ] 2>/dev/null; then
	t_ok "/tmp holds no more than memory_mb ($out MB)"
elif [ $rc -eq 137 ]; then
	t_ok "/tmp holds no more than memory_mb (the writer was OOM-killed in the limit)"
else t_fail "/tmp holds no more than memory_mb (rc $rc)"; diag "$out"; fi
POLICY=""
is "tmpfs have a size without a memory limit (1 GiB)" \
	"$("$MOAT" run --name "$(nm)" $BASE -- df -m /tmp /var/tmp /dev/shm |
	awk 'NR > 1 { printf "%s ", $2 }')" "1024 1024 1024 "
if [ "$(uname -m)" = x86_64 ]; then
	confine_rc 159 compat_arch
else
	skip "compat_arch is x86_64 only"
fi

# kill(-1) inside reaches only the sandbox: a host process of the same
# uid (the policy sets it) lives on.
setpriv --reuid=1000 --regid=1000 --clear-groups sleep 60 &
host=$!
on_cleanup "kill $host"
POLICY="-p $OBJ/uid1000.json"
confine_rc 137 kill_all
POLICY=""
if kill -0 "$host" 2>/dev/null; then t_ok "host process of uid 1000 survives kill(-1)"
else t_fail "host process of uid 1000 survives kill(-1)"; fi
kill "$host" 2>/dev/null

# The caller's terminal stays out: started from a process whose
# controlling terminal is a pty, the command leads its own session, has
# no controlling terminal, and /dev/tty does not open.
cat > "$OBJ/ctty.py" <<'EOF'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out, end = b"", time.time() + 20
while time.time() < end:
    if not select.select([fd], [], [], 0.5)[0]:
        continue
    try:
        b = os.read(fd, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
EOF
out=$(python3 "$OBJ/ctty.py" "$MOAT" run --name "$(nm)" -- /bin/sh -c \
    'if (echo x > /dev/tty) 2>/dev/null; then echo TTY; else echo NOTTY; fi
    read -r l < /proc/$$/stat; set -- $l
    [ "$6" = "$1" ] && [ "$5" = "$1" ] && [ "$7" = 0 ] && echo LEADER' |
    tr -d '\r')
echo "$out" | grep -qx NOTTY
is "/dev/tty does not reach the caller's terminal" "$?" 0
echo "$out" | grep -qx LEADER
is "the command leads its own session, without a terminal" "$?" 0
[ -n "$out" ] && diag "$out"
# Not in the terminal's foreground group any more: moat run passes ^C on.
name=$(nm)
"$MOAT" run --name "$name" -- sleep 30 &
victim=$!
# Until the command runs (a ^C during setup is another matter).
for _ in $(seq 200); do
	for t in $(cat "/sys/fs/cgroup/pids/moat/$name/tasks" 2>/dev/null); do
		[ "$(cat /proc/$t/comm 2>/dev/null)" = sleep ] && break 2
	done
	sleep 0.05
done
kill -INT "$victim"
wait "$victim"
is "SIGINT to moat run reaches the command" "$?" 130

# exit status
"$MOAT" run --name "$(nm)" -- sh -c 'exit 7'
is "exit status passes through" "$?" 7
"$MOAT" run --name "$(nm)" -- sh -c 'kill -TERM $$'
is "death by SIGTERM is 143" "$?" 143
"$MOAT" run --name "$(nm)" -- /no/such/command 2>/dev/null
is "missing command is 127" "$?" 127
out=$("$MOAT" run --name "$(nm)" -p "$OBJ/hard.json" -- true 2>&1)
rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "/no/such/path"; then
	t_ok "hard_requirement names the missing path"
else t_fail "hard_requirement names the missing path"; diag "rc=$rc $out"; fi
"$MOAT" run --name "BAD_NAME" -- true 2>/dev/null
is "a bad name is a usage error" "$?" 100

# environment: cleared, then the proxy variables
env=$(MOAT_E2E_SECRET=leak "$MOAT" run --name "$(nm)" -- env)
for v in HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy grpc_proxy; do
	echo "$env" | grep -qE "^$v=http://10\.[0-9.]+:3128$" || { t_fail "env $v"; continue; }
	t_ok "env $v"
done
echo "$env" | grep -q '^NO_PROXY=127.0.0.1,localhost,::1$' && echo "$env" |
	grep -q '^no_proxy=127.0.0.1,localhost,::1$' &&
	echo "$env" | grep -q '^NODE_USE_ENV_PROXY=1$'
is "env NO_PROXY, no_proxy, NODE_USE_ENV_PROXY" "$?" 0
echo "$env" | grep -q MOAT_E2E_SECRET
is "the caller's environment stays out" "$?" 1
echo "$env" | grep -q '^HOME=/sandbox$' && echo "$env" | grep -q '^USER=sandbox$'
is "env HOME and USER" "$?" 0

# the workspace is the host directory given with -w
ws="$OBJ/ws" && mkdir -p "$ws" && chmod 0777 "$ws"
"$MOAT" run --name "$(nm)" -w "$ws" -- sh -c 'echo made > /sandbox/out'
is "writes in /sandbox land in the workspace" "$(cat "$ws/out" 2>/dev/null)" made

# policy read_write: a host path outside the sandbox's own is bound
# read-write; its sibling, not in the policy, stays read-only
rw="/srv/moat-e2e-$$-rw"; ro="/srv/moat-e2e-$$-ro"
mkdir -p "$rw" "$ro" && chmod 0777 "$rw" "$ro"
on_cleanup "rm -rf $rw $ro"
printf '{"version":1,"filesystem_policy":{"read_write":["%s"]},"network_policies":{}}\n' \
    "$rw" > "$OBJ/rw.json"
"$MOAT" run --name "$(nm)" -p "$OBJ/rw.json" -- sh -c "echo rw > $rw/f"
is "policy read_write path is writable" "$(cat "$rw/f" 2>/dev/null)" rw
"$MOAT" run --name "$(nm)" -p "$OBJ/rw.json" -- sh -c "echo ro > $ro/f" 2>/dev/null
is "a host path not in the policy stays read-only" "$([ -e "$ro/f" ]; echo $?)" 1

# the users' files stay out: /home, /root, /srv, /mnt are not in the
# view unless a policy lists them, and a listed directory does not make
# a 0600 file of the operator's (uid 1000) readable: the sandbox has a
# uid of its own, which no host user has
sec="/srv/moat-e2e-$$-sec"
mkdir -p "$sec" && echo key > "$sec/id" && echo pub > "$sec/pub" &&
	chown 1000:1000 "$sec/id" && chmod 0600 "$sec/id" && chmod 0755 "$sec"
on_cleanup "rm -rf $sec"
out=$("$MOAT" run --name "$(nm)" -- sh -c 'for d in /home /root /srv /mnt \
    /media /boot /work; do [ -e $d ] && echo "$d"; done; cat "$1/id"; id -u' \
    sh "$sec" 2>/dev/null)
uid=$(echo "$out" | tail -n 1)
is "/home, /root, /srv, ... are not visible" "$(echo "$out" | sed '$d' | tr '\n' ' ')" ""
if [ -n "$uid" ] && [ "$uid" != 1000 ] && [ "$uid" != 0 ] &&
    ! cut -d: -f3 /etc/passwd | grep -qx "$uid"; then
	t_ok "the sandbox uid ($uid) is no host user's"
else t_fail "the sandbox uid ($uid) is no host user's"; fi
printf '{"version":1,"filesystem_policy":{"read_only":["%s"]},"network_policies":{}}\n' \
    "$sec" > "$OBJ/sec.json"
is "a read_only host dir is visible, uid 1000's 0600 file is not readable" \
	"$("$MOAT" run --name "$(nm)" -p "$OBJ/sec.json" -- sh -c \
	'cat "$1/pub"; cat "$1/id" || echo denied; [ -e /home ] || echo nohome' \
	sh "$sec" 2>/dev/null | tr '\n' ' ')" "pub denied nohome "

# network: everything but the proxy is refused at once
if upstream_start sb; then
	confine connect "$UP_ADDR" 80
	confine connect "$UP_ADDR" 7
	confine udp "$UP_ADDR" 53
	out=$("$MOAT" run --name "$(nm)" $BASE -- sh -c 'a=${HTTP_PROXY#http://};
	    a=${a%:*}; exec "$1" connect "$a" 22 && exec "$1" tfo "$a" 9' sh \
	    "$CONFINE" 2>&1)
	is "host veth address: other ports refused, no TCP fast open" "$?" 0
	diag "$out"
	confine connect 127.0.0.53 53
	out=$("$MOAT" run --name "$(nm)" -- sh -c 'python3 -m http.server 8000 \
	    --bind 127.0.0.1 >/dev/null 2>&1 & for i in 1 2 3 4 5 6 7 8 9 10 \
	    11 12 13 14 15 16 17 18 19 20; do sleep 0.1; python3 -c "
import socket; socket.create_connection((\"127.0.0.1\", 8000), 1)" \
	    2>/dev/null && exit 0; done; exit 1' 2>&1)
	is "loopback servers inside the sandbox work" "$?" 0
else
	skip "could not start the upstream netns"
fi
skip "NFLOG logging of the refused packets is tested by tests/unit/test_net"

# a moat run killed with SIGKILL leaves its cgroups and network; the
# next moat run removes them
"$MOAT" run -- sleep 30 &
victim=$!
for _ in $(seq 50); do
	[ -d "/sys/fs/cgroup/pids/moat/run-$victim" ] && break; sleep 0.05
done
sleep 0.2
kill -KILL "$victim"; wait "$victim" 2>/dev/null
"$MOAT" run --name "$(nm)" -- true
left=$(ls -d /sys/fs/cgroup/*/moat/run-$victim 2>/dev/null; ip netns list |
	grep "moat-run-$victim "; nft list tables | grep "moat-run-$victim\$")
is "a killed run is cleaned up by the next one" "$left" ""

# moatd runs with umask 077: the sandbox's generated files must still be
# readable, and its processes get a login's umask.
is "whoami and umask with the caller's umask 077" \
	"$(umask 077; "$MOAT" run --name "$(nm)" -- sh -c 'whoami; umask' | tr '\n' ' ')" "sandbox 0022 "

# Nothing connects into a sandbox from outside (input chain), while
# loopback inside works: a server in the sandbox, a client on the host.
n=$(nm)
"$MOAT" run --name "$n" -- sh -c 'python3 -m http.server 8123 --bind 0.0.0.0 >/dev/null 2>&1 & sleep 4' &
inpid=$!
addr=""
for _ in $(seq 50); do
	addr=$(ip -n "moat-$n" -4 -o addr 2>/dev/null | awk '$2 != "lo" {sub("/.*", "", $4); print $4}')
	[ -n "$addr" ] && ip netns exec "moat-$n" bash -c "exec 3<>/dev/tcp/127.0.0.1/8123" 2>/dev/null && break
	sleep 0.1
done
t "a server inside answers on loopback" ip netns exec "moat-$n" bash -c "exec 3<>/dev/tcp/127.0.0.1/8123"
t_not "the host cannot connect into the sandbox ($addr)" timeout 3 bash -c "exec 3<>/dev/tcp/$addr/8123"
wait $inpid

# A host path below /tmp named by the policy is bound on top of the
# sandbox's private /tmp (CI may build in /tmp); the rest stays private.
mkdir -p "/tmp/moat-bind-$$" && echo bound > "/tmp/moat-bind-$$/f" && touch "/tmp/moat-other-$$"
on_cleanup "rm -rf /tmp/moat-bind-$$ /tmp/moat-other-$$"
printf '{"version":1,"filesystem_policy":{"read_only":["/tmp/moat-bind-%s"]},"network_policies":{}}\n' $$ > "$OBJ/tmpbind.json"
is "a policy path below /tmp is visible, read-only; other host /tmp files are not" \
	"$("$MOAT" run -p "$OBJ/tmpbind.json" --name "$(nm)" -- sh -c "cat /tmp/moat-bind-$$/f; touch /tmp/moat-bind-$$/g 2>/dev/null || echo ro; test -e /tmp/moat-other-$$ || echo private" | tr '\n' ' ')" "bound ro private "

# A named run killed with SIGKILL: the next run of that name clears the
# leftovers (no process is left in its cgroup) and starts.
kn=$(nm)
"$MOAT" run --name "$kn" -- sleep 30 & kpid=$!
for _ in $(seq 50); do ip netns list | grep -q "moat-$kn " && break; sleep 0.1; done
kill -KILL "$kpid"; wait "$kpid" 2>/dev/null
is "a named run after a killed one of that name starts" \
	"$("$MOAT" run --name "$kn" -- echo again 2>&1)" again

# nothing left behind (veth pairs go with their netns, asynchronously)
for _ in $(seq 30); do
	[ "$(traces)" = "$before" ] && break
	sleep 0.1
done
is "nothing left behind" "$(traces)" "$before"

done_testing
