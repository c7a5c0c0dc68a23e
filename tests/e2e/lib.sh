# Shared helpers for the end-to-end tests (sourced). TAP output:
#   ok / not ok lines from `t`, `skip`, and `done_testing` at the end.
# Tests send traffic only to loopback and to network namespaces they
# create; everything they create is removed by `cleanup` (an EXIT trap).
set -u
: "${MOAT_BUILD:=$(cd "$(dirname "$0")/../.." && pwd)/build/rel}"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
MOAT="$MOAT_BUILD/moat"
MOATD="$MOAT_BUILD/moatd"
OBJ=$(mktemp -d /tmp/moat-e2e.XXXXXX)
chmod 755 "$OBJ"
# The CLI's store, unless a test's moatd names its own: never the
# checkout's var/moat.db, which is `make run`'s.
export MOAT_STORE="$OBJ/moat.db"
T_N=0
T_FAILED=0
CLEANUP_CMDS=""

t_ok() { T_N=$((T_N + 1)); T_LAST_FAILED=; echo "ok $T_N - $*"; }
t_fail() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); T_LAST_FAILED=1
	echo "not ok $T_N - $*"; echo "#   Failed test $T_N - $*" >&2; }
skip() { T_N=$((T_N + 1)); T_LAST_FAILED=; echo "ok $T_N # SKIP $*"; }
# diag TEXT: a comment; after a failure on stderr, which prove shows
# without -v (CI's log then says why).
diag() { if [ -n "$T_LAST_FAILED" ]; then echo "$*" | sed 's/^/# /' >&2
	else echo "$*" | sed 's/^/# /'; fi; }
# t NAME CMD...: one test, passes when CMD exits 0
t() { name=$1; shift; if "$@" >"$OBJ/last.out" 2>&1; then t_ok "$name"; else
	t_fail "$name"; diag "$(tail -n 15 "$OBJ/last.out" | sed 's/^/  /')"; fi; }
# t_not NAME CMD...: passes when CMD fails
t_not() { name=$1; shift; if "$@" >"$OBJ/last.out" 2>&1; then
	t_fail "$name"; diag "$(tail -n 15 "$OBJ/last.out" | sed 's/^/  /')"; else t_ok "$name"; fi; }
# is NAME GOT WANT
is() { if [ "$2" = "$3" ]; then t_ok "$1"; else t_fail "$1"; diag "  got: '$2'" "  want: '$3'"; fi; }
on_cleanup() { CLEANUP_CMDS="$*; $CLEANUP_CMDS"; }
cleanup() { eval "$CLEANUP_CMDS" >/dev/null 2>&1; rm -rf "$OBJ"; }
trap cleanup EXIT
done_testing() { echo "1..$T_N"; [ $T_FAILED -eq 0 ]; }
need_root() { [ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }; }

# no_raw FILE: FILE is non-empty UTF-8 holding nothing a terminal acts on
# or that hides text: no C0 control but tab and newline, no DEL, no C1
# (raw bytes are not UTF-8; encoded ones are U+0080..U+009F), no bidi
# override (U+202A..U+202E)
no_raw() { /usr/bin/python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
t = d.decode("utf-8")
sys.exit(1 if not d or [c for c in t if (ord(c) < 0x20 and c not in "\t\n")
    or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e] else 0)' "$1"; }

# free_port: a TCP port nobody listens on (bind 0 and read it back).
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# free_fixed_port: a port below the ephemeral range (no outgoing
# connection takes it meanwhile) that is free on every address now: the
# proxy listens on each sandbox's address. Tries at most 200, from one
# that depends on our pid.
free_fixed_port() {
	/usr/bin/python3 -c '
import socket, sys
base = 20000 + int(sys.argv[1]) % 12000
for i in range(200):
    p = 20000 + (base - 20000 + i * 61) % 12000
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit(1)' "$$"
}

# upstream_start NAME: a test host in its own netns "mu-NAME-$$" reached
# from the host over a veth (10.250.N.0/30), serving HTTP on 80 (body
# "upstream-ok") and a TCP echo on 7. Sets UP_ADDR, UP_NS.
UP_IDX=0
upstream_start() {
	UP_IDX=$((UP_IDX + 1))
	UP_NS="mu$$-$UP_IDX"
	local oct=$(( ($$ + UP_IDX * 7) % 200 + 20 ))
	local h="muh$$$UP_IDX" s="mus$$$UP_IDX"
	h=$(echo "$h" | cut -c1-15); s=$(echo "$s" | cut -c1-15)
	UP_ADDR="10.250.$oct.2"
	UP_HOSTSIDE="10.250.$oct.1"
	ip netns add "$UP_NS" || return 1
	on_cleanup "ip netns del $UP_NS"
	ip link add "$h" type veth peer name "$s" netns "$UP_NS" || return 1
	on_cleanup "ip link del $h"
	ip addr add "$UP_HOSTSIDE/30" dev "$h" && ip link set "$h" up
	ip -n "$UP_NS" addr add "$UP_ADDR/30" dev "$s"
	ip -n "$UP_NS" link set "$s" up && ip -n "$UP_NS" link set lo up
	mkdir -p "$OBJ/www-$UP_IDX" && echo upstream-ok > "$OBJ/www-$UP_IDX/index.html"
	ip netns exec "$UP_NS" /usr/bin/python3 -m http.server 80 --bind "$UP_ADDR" \
		--directory "$OBJ/www-$UP_IDX" >/dev/null 2>&1 &
	on_cleanup "kill $!"
	ip netns exec "$UP_NS" /usr/bin/python3 -c '
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("'"$UP_ADDR"'", 7)); s.listen(64)
def echo(c):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
' >/dev/null 2>&1 &
	on_cleanup "kill $!"
	# Wait (bounded) for both servers.
	for _ in $(seq 50); do
		ip netns exec "$UP_NS" bash -c "exec 3<>/dev/tcp/$UP_ADDR/80 && exec 4<>/dev/tcp/$UP_ADDR/7" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start_moatd CONFIG: moatd in the background with a config file; waits
# (bounded) until its SSH port answers. Sets MOATD_PID.
start_moatd() {
	"$MOATD" -c "$1" >"$OBJ/moatd.log" 2>&1 &
	MOATD_PID=$!
	on_cleanup "stop_moatd"
	for _ in $(seq 100); do
		grep -q "moatd is ready" "$OBJ/moatd.log" 2>/dev/null && return 0
		kill -0 $MOATD_PID 2>/dev/null || { cat "$OBJ/moatd.log" | sed 's/^/# moatd: /'; return 1; }
		sleep 0.1
	done
	sed 's/^/# moatd: /' "$OBJ/moatd.log"; return 1
}
stop_moatd() {
	[ -n "${MOATD_PID:-}" ] || return 0
	kill -TERM "$MOATD_PID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$MOATD_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$MOATD_PID" 2>/dev/null
	MOATD_PID=""
}

# sandbox_lock NAME: hold the machine-wide lock of sandbox NAME until
# this test file exits (waits at most 15 minutes).
sandbox_lock() {
	local fd
	mkdir -p /tmp/moat-e2e-locks || return 1
	exec {fd}>"/tmp/moat-e2e-locks/$1" || return 1
	flock -w 900 "$fd" || { echo "# sandbox name $1 stayed locked" >&2; return 1; }
}

# moatd_setup SANDBOX[:POLICYFILE]...: keys, hosts file and a moatd config
# in $OBJ for the named sandboxes (workspaces under $OBJ), SSH on a free
# port; writes $OBJ/ssh_config with a Host entry per sandbox. Sets
# SSH_PORT, CFG, and exports MOAT_STORE, MOAT_CONTROL, MOAT_STATE for the
# CLI.
moatd_setup() {
	# Two moatds with one sandbox name on one machine purge each other's
	# sandbox (a start clears a killed moatd's leftovers of its names):
	# test files that share a name take turns, bounded in time.
	for spec in "$@"; do
		sandbox_lock "${spec%%:*}" || return 1
	done
	SSH_PORT=$(free_port)
	PROXY_PORT=$(free_fixed_port) || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$OBJ/id_user" -C e2e || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$OBJ/id_other" -C other || return 1
	CFG="$OBJ/moatd.json"
	: > "$OBJ/hosts"
	[ -n "${UP_ADDR:-}" ] && echo "$UP_ADDR upstream.test" >> "$OBJ/hosts"
	echo "127.0.0.1 loopback.test" >> "$OBJ/hosts"
	echo "169.254.169.254 metadata.test" >> "$OBJ/hosts"
	{
		printf '{"state_dir":"%s/var","listen":[{"addr":"127.0.0.1","port":%s}],' "$OBJ" "$SSH_PORT"
		printf '"proxy":{"port":%s,"hosts_file":"%s/hosts"},' "$PROXY_PORT" "$OBJ"
		printf '"events":"%s/events.jsonl",' "$OBJ"
		printf '"net_pool":"10.%s.0.0/16",' "$(( 150 + $$ % 50 ))"
		printf '"sandboxes":['
		sep=""
		for spec in "$@"; do
			name=${spec%%:*}; pol=${spec#*:}; [ "$pol" = "$spec" ] && pol=""
			# moatd makes the workspace, owned by the sandbox's uid
			printf '%s{"name":"%s","workspace":"%s/ws-%s","authorized_keys":["%s/id_user.pub"]' \
				"$sep" "$name" "$OBJ" "$name" "$OBJ"
			[ -n "$pol" ] && printf ',"policy":"%s"' "$pol"
			printf '}'
			sep=","
		done
		printf ']}\n'
	} > "$CFG"
	: > "$OBJ/ssh_config"
	for spec in "$@"; do
		name=${spec%%:*}
		cat >> "$OBJ/ssh_config" <<EOC
Host $name
  HostName 127.0.0.1
  Port $SSH_PORT
  User $name
  IdentityFile $OBJ/id_user
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
EOC
	done
	export MOAT_STORE="$OBJ/var/moat.db" MOAT_CONTROL="$OBJ/var/moatd.sock" MOAT_STATE="$OBJ/var"
	SSH="ssh -F $OBJ/ssh_config"
}
