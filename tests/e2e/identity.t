#!/bin/bash
# Caller identity against spoofing, in real `moat run` sandboxes: a
# binary the policy does not allow (/sandbox/denied) tries to make its
# connection look like an allowed one's (/sandbox/allowed, a copy of the
# same helper, tests/helpers/spoof.c). Every mode runs with kernel
# attribution (BPF) and with the /proc fallback (MOAT_IDENTITY=proc).
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
export MOAT_STORE="$OBJ/moat.db"

echo "$UP_ADDR upstream.test" > "$OBJ/hosts"
WS="$OBJ/ws"
mkdir -p "$WS"
cp "$MOAT_BUILD/tests/helpers/spoof" "$WS/allowed"
cp "$MOAT_BUILD/tests/helpers/spoof" "$WS/denied"
chmod -R a+rwX "$WS"
printf '{"version":1,"network_policies":{"up":{"endpoints":[{"host":"upstream.test","port":7}],"binaries":[{"path":"/sandbox/allowed"}]}}}\n' \
	> "$OBJ/pol.json"

# srun MODE CMD: CMD (bash -c) in a fresh sandbox, identity mode MODE.
srun() {
	MOAT_IDENTITY=$1 timeout 60 "$MOAT" run -p "$OBJ/pol.json" -w "$WS" \
		--hosts "$OBJ/hosts" -- bash -c "$2" 2>&1
}
has() { printf '%s' "$1" | grep -qF -- "$2"; }
# denied NAME OUTPUT [REASON]: a 403, with REASON in it when given
denied() {
	if has "$2" code=403 && { [ -z "${3:-}" ] || has "$2" "$3"; }; then
		t_ok "$1"
	else
		t_fail "$1"; diag "  got: $2"
	fi
}

T=upstream.test:7

for mode in bpf proc; do
	out=$(srun $mode "/sandbox/allowed direct $T")
	if has "$out" code=200; then t_ok "$mode: the allowed binary connects"
	else t_fail "$mode: the allowed binary connects"; diag "  got: $out"; fi
	out=$(srun $mode "/sandbox/allowed direct6 $T")
	if has "$out" code=200; then t_ok "$mode: a dual-stack (v4-mapped) client is identified"
	else t_fail "$mode: a dual-stack (v4-mapped) client is identified"; diag "  got: $out"; fi
	out=$(srun $mode "/sandbox/denied direct $T")
	denied "$mode: the other binary is denied" "$out" \
		"binary '/sandbox/denied' is not one of its binaries"

	# The /proc fallback finds the socket with sock_diag, whose answer
	# for the tuple is a listener here; with BPF the connection's own
	# record (by its 4-tuple) names the binary that made it.
	out=$(srun $mode "/sandbox/denied listener /sandbox/allowed $T")
	if [ $mode = bpf ]; then
		why="binary '/sandbox/denied' is not one of its binaries"
	else
		why="is not the connection (a LISTEN socket answered)"
	fi
	denied "$mode: listener substitution (SO_BINDTODEVICE) is denied" "$out" \
		"$why"
	out=$(srun $mode "/sandbox/denied thread /sandbox/allowed $T")
	denied "$mode: a thread without CLONE_FILES cannot hide the caller" "$out"
	has "$out" /sandbox/denied ||
		{ t_fail "$mode: ... and the denial names /sandbox/denied"; diag "  got: $out"; } &&
		t_ok "$mode: ... and the denial names /sandbox/denied"
	out=$(srun $mode "/sandbox/denied zombie /sandbox/allowed $T")
	denied "$mode: a zombie thread group leader cannot hide the caller" "$out"
	out=$(srun $mode "/sandbox/denied tables /sandbox/allowed $T")
	denied "$mode: nor can a thread whose fd table is the process's 71st" "$out"
done

# With the kernel's record, what happens to the socket after connect
# changes nothing: the task that connected it is the caller. (The /proc
# fallback sees only who holds the socket: see docs/proxy.md.)
out=$(srun bpf "/sandbox/denied scm /sandbox/allowed $T")
denied "bpf: SCM_RIGHTS hand-off to an allowed binary is denied" "$out" \
	"binary '/sandbox/denied' is not one of its binaries"
out=$(srun bpf "/sandbox/denied exec /sandbox/allowed $T")
denied "bpf: exec of an allowed binary after connect is denied" "$out" \
	"not the executable it connected with (exec after connect)"
# A parent grants its child only as what it ran when it forked it: one
# that forks the caller and then execs an allowed binary (directly, or
# as a subreaper the orphan was reparented to) spawned nothing as that
# binary. (The /proc fallback cannot tell: see docs/proxy.md.)
out=$(srun bpf "/sandbox/denied forkexec /sandbox/allowed $T")
denied "bpf: a parent that execs an allowed binary after the fork does not grant" \
	"$out" "binary '/sandbox/denied' is not one of its binaries"
out=$(srun bpf "/sandbox/denied reaper /sandbox/allowed $T")
denied "bpf: nor does a subreaper an orphan was reparented to" "$out" \
	"binary '/sandbox/denied' is not one of its binaries"
out=$(srun bpf "/sandbox/allowed forkexec /sandbox/allowed $T")
if has "$out" code=200; then t_ok "bpf: a caller forked by an allowed parent is allowed"
else t_fail "bpf: a caller forked by an allowed parent is allowed"; diag "  got: $out"; fi
for mode in bpf proc; do
	out=$(srun $mode "/sandbox/allowed scm /sandbox/allowed $T")
	if has "$out" code=200; then t_ok "$mode: hand-off between allowed binaries works"
	else t_fail "$mode: hand-off between allowed binaries works"; diag "  got: $out"; fi
done

# The code check exempts the binary's own file as that file, not as its
# name: an allowed binary in a writable place (a policy warning) whose
# name was given other code after it started (renamed over it) cannot
# load that code and pass it off as itself.
cp "$MOAT_BUILD/tests/helpers/spoof" "$WS/tool"
printf 'int moat_e2e_evil(void) { return 1; }\n' |
	cc -shared -fPIC -x c -o "$WS/evil.so" - || t_fail "build evil.so"
chmod -R a+rwX "$WS"
printf '{"version":1,"network_policies":{"t":{"endpoints":[{"host":"upstream.test","port":7}],"binaries":[{"path":"/sandbox/tool"}]}}}\n' \
	> "$OBJ/tool.json"
out=$(timeout 60 "$MOAT" run -p "$OBJ/tool.json" -w "$WS" --hosts "$OBJ/hosts" \
	-- bash -c "/sandbox/tool dlopen /sandbox/tool /sandbox $T & \
	for i in \$(seq 200); do [ -e /sandbox/ready ] && break; sleep 0.02; done
	mv /sandbox/evil.so /sandbox/tool && touch /sandbox/go; wait" 2>&1)
denied "code renamed over an allowed binary's own file is not its file" \
	"$out" "code from /sandbox/tool loaded into /sandbox/tool"

# No caller's /proc files stall the loop that serves every connection:
# a process with 30,000 mappings (4 MB of /proc/PID/maps) sends 48
# CONNECTs at once, and a second caller connects meanwhile. Read on the
# loop, the first process's maps delayed the second by 3-5 s (32 ms
# without them); they are read on the identity workers. The same when
# the process with the mappings is the allowed parent that grants its
# child's 48 connections (its code is checked too).
stall() {
	local got ms
	got=$(srun bpf "/sandbox/$2 stall 30000 48 $3 /sandbox/allowed $T")
	ms=$(printf '%s' "$got" | sed -n 's/^victim_ms=//p')
	if [ -n "$ms" ] && [ "$ms" -lt 1500 ] && has "$got" "burst 200=$4"; then
		t_ok "$1 (${ms} ms)"
	else
		t_fail "$1"; diag "  got: $got"
	fi
}
stall "a caller's long maps do not delay another connection" denied - 0
stall "a granting parent's long maps do not delay another connection" \
	allowed /sandbox/denied 48

# The bypass monitor names the sender of a rejected SYN from the
# kernel's record, though the sender has closed the socket by then (it
# must still run: a process that has exited cannot be named). The /proc
# scan looks for the socket itself, which is gone.
MOAT_IDENTITY=bpf timeout 30 "$MOAT" run -p "$OBJ/pol.json" -w "$WS" \
	--hosts "$OBJ/hosts" --name "idb$$" -- \
	/sandbox/denied bypass "$UP_ADDR" 7 >/dev/null 2>&1
got=$("$MOAT" denials --json --sandbox "idb$$" --stage bypass 2>&1)
if printf '%s' "$got" | grep -F "\"$UP_ADDR\"" | grep -qF '"binary":"/sandbox/denied"'; then
	t_ok "bpf: a TCP bypass event names the binary after its socket closed"
else
	t_fail "bpf: a TCP bypass event names the binary after its socket closed"
	diag "  got: $got"
fi

# The proxy finds a connection's record by its 4-tuple, in a map that
# holds it exactly while the connection lasts: one entry while a shell
# in the sandbox holds a connection to the proxy, none once it closed.
conns() {
	python3 - "$1" <<'EOF'
import json, subprocess, sys
def bt(*a):
    r = subprocess.run(["bpftool", "-j"] + list(a), capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None
progs = bt("cgroup", "show", sys.argv[1])
for p in progs if isinstance(progs, list) else []:
    if p.get("name") != "moat_sockops":
        continue
    for m in (bt("prog", "show", "id", str(p["id"])) or {}).get("map_ids", []):
        if (bt("map", "show", "id", str(m)) or {}).get("name") == "conns":
            print(len(bt("map", "dump", "id", str(m)) or []))
            sys.exit(0)
print("none")
EOF
}
cname="idc$$"
MOAT_IDENTITY=bpf timeout 30 "$MOAT" run -p "$OBJ/pol.json" -w "$WS" \
	--name "$cname" -- bash -c 'h=${HTTP_PROXY#http://}
		exec 3<>"/dev/tcp/${h%:*}/${h##*:}"; sleep 4; exec 3>&-; sleep 6' \
	>/dev/null 2>&1 &
crun=$!
cg=""
for i in $(seq 1 40); do
	for d in /sys/fs/cgroup/unified/moat/$cname /sys/fs/cgroup/moat/$cname; do
		[ -d "$d" ] && cg=$d
	done
	[ -n "$cg" ] && break
	sleep 0.1
done
sleep 2
during=$(conns "$cg")
sleep 5
after=$(conns "$cg")
wait $crun
if [ "$during" = 1 ] && [ "$after" = 0 ]; then
	t_ok "bpf: a connection to the proxy is in the map while it lasts"
else
	t_fail "bpf: a connection to the proxy is in the map while it lasts"
	diag "  entries while connected: $during, after: $after"
fi

# On a kernel other than the one moat was built on, the programs are
# relocated against that kernel's full BTF instead of the embedded
# minimal one, and the log says so. A private mount namespace shows moat
# other build-id notes; attribution must work the same.
printf 'another kernel' > "$OBJ/notes"
fullbtf() {
	unshare -m sh -c 'mount --bind "$1" /sys/kernel/notes && shift &&
		MOAT_LOG_LEVEL=info MOAT_IDENTITY=bpf timeout 60 "$@"' sh \
		"$OBJ/notes" "$MOAT" run -p "$OBJ/pol.json" -w "$WS" \
		--hosts "$OBJ/hosts" -- bash -c "$1" 2>&1
}
out=$(fullbtf "/sandbox/allowed direct $T")
if has "$out" "relocating against its full BTF" && has "$out" code=200; then
	t_ok "bpf, other kernel: full BTF, the allowed binary connects"
else
	t_fail "bpf, other kernel: full BTF, the allowed binary connects"
	diag "  got: $out"
fi
out=$(fullbtf "/sandbox/denied scm /sandbox/allowed $T")
denied "bpf, other kernel: SCM_RIGHTS hand-off is denied" "$out" \
	"binary '/sandbox/denied' is not one of its binaries"
out=$(MOAT_LOG_LEVEL=debug srun bpf "/sandbox/allowed direct $T")
if has "$out" "full BTF" || ! has "$out" code=200; then
	t_fail "bpf, this kernel: the minimal BTF is used"; diag "  got: $out"
else
	t_ok "bpf, this kernel: the minimal BTF is used"
fi

done_testing
