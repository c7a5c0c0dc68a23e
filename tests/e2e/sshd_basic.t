#!/bin/bash
# The embedded SSH server (sshd/, sessions/) against real clients: OpenSSH
# ssh/scp/sftp, rsync, paramiko, tmux. Served by tests/helpers/sshd_test on
# 127.0.0.1 with host hooks (no sandbox). TAP output.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${MOAT_BUILD:-$ROOT/build/rel}
SRV=$B/tests/helpers/sshd_test
RELAY="python3 $ROOT/tests/helpers/relay_proxy.py"
PY=/usr/bin/python3
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && echo "# $2" >&2; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
is() { if [ "$2" = "$3" ]; then ok "$1"; else nok "$1" "got '$2' want '$3'"; fi; }

if [ ! -x "$SRV" ] || ! command -v ssh >/dev/null; then
	echo "1..1"; echo "ok 1 # SKIP needs $SRV and OpenSSH"; exit 0
fi
T=$(mktemp -d /tmp/moat-sshd.XXXXXX)
PIDS=""
TMUX_SOCK=moat-sshd-$$
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	[ -S "$T/cm" ] && ssh -F "$T/cfg" -o ControlPath="$T/cm" -O exit box 2>/dev/null
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$T/id" </dev/null
ssh-keygen -q -t ed25519 -N '' -f "$T/bad" </dev/null
cp "$T/id.pub" "$T/authorized_keys"
SECRET=test-relay-secret
"$SRV" -d "$T" -s box -r "$SECRET" 2>"$T/server.log" &
SRVPID=$!
PIDS="$PIDS $SRVPID"
for _ in $(seq 50); do [ -s "$T/port" ] && [ -s "$T/relay_port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
RPORT=$(cat "$T/relay_port" 2>/dev/null)
if [ -z "$PORT" ]; then echo "1..1"; echo "not ok 1 - server did not start"; cat "$T/server.log" | sed 's/^/# /'; exit 1; fi
cat >"$T/cfg" <<EOF
Host box other
  HostName 127.0.0.1
  Port $PORT
  User box
  IdentityFile $T/id
  IdentitiesOnly yes
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
EOF
S="timeout 60 ssh -F $T/cfg"

# --- auth ---
out=$($S box 'echo hello') ; is "exec prints output" "$out" "hello"
timeout 30 ssh -F /dev/null -p "$PORT" -o UserKnownHostsFile=/dev/null \
	-o StrictHostKeyChecking=no -o BatchMode=yes -o IdentitiesOnly=yes \
	-o LogLevel=ERROR -i "$T/bad" box@127.0.0.1 true 2>/dev/null
rc=$?; [ $rc = 255 ] && ok "unauthorized key refused" || nok "unauthorized key refused" "rc $rc"
log=$($S -v -o LogLevel=DEBUG1 -i "$T/bad" -i "$T/id" box true 2>&1)
if echo "$log" | grep -q "Server accepts key: $T/bad"; then
	nok "probe not accepted for an unauthorized key"
else ok "probe not accepted for an unauthorized key"; fi
echo "$log" | grep -q "Server accepts key: $T/id" && ok "probe accepted for the authorized key" ||
	nok "probe accepted for the authorized key"
$S -l nobody box true 2>/dev/null
rc=$?; [ $rc = 255 ] && ok "unknown user refused" || nok "unknown user refused" "rc $rc"

# --- exit status, signals, EOF, trailing output ---
$S box 'exit 7'; is "exit 7 gives rc 7" "$?" 7
$S box true; is "true gives rc 0" "$?" 0
$S box 'kill -TERM $$'; is "signal-killed command gives ssh rc 255" "$?" 255
out=$($S -o LogLevel=DEBUG1 -v box 'kill -TERM $$' 2>&1 | grep -c 'rtype exit-signal')
is "exit-signal sent for a signal-killed command" "$out" 1
out=$($S box '(sleep 1; echo late) & echo early' | tr '\n' ' ')
is "trailing background output kept" "$out" "early late "
out=$(echo hi | $S box 'wc -c'); is "stdin EOF reaches the command" "$out" 3
out=$($S box 'seq 1 1000000' | wc -l); is "a million lines arrive" "$out" 1000000
s0=$(date +%s)
$S box 'sleep 8 >/dev/null 2>&1 & echo started' >/dev/null
el=$(( $(date +%s) - s0 ))
[ $el -lt 6 ] && ok "a detached background job does not hold the channel (${el}s)" ||
	nok "a detached background job does not hold the channel" "${el}s"
s0=$(date +%s)
out=$($S box 'sleep 8 & echo started')
el=$(( $(date +%s) - s0 ))
[ "$out" = started ] && [ $el -lt 6 ] && ok "a background job holding stdout ends the channel after the grace (${el}s)" ||
	nok "a background job holding stdout ends the channel after the grace" "${el}s '$out'"
head -c 64M /dev/urandom >"$T/big"
want=$(sha256sum <"$T/big" | cut -d' ' -f1)
good=0
for i in 1 2 3; do
	got=$($S box sha256sum <"$T/big" | cut -d' ' -f1)
	[ "$got" = "$want" ] && good=$((good + 1))
done
is "64 MiB upload sha256 matches, 3 times" "$good" 3
out=$(head -c 1G /dev/zero | $S box 'wc -c'); is "1 GiB upload" "$out" 1073741824
out=$($S box 'head -c 1G /dev/zero' | wc -c); is "1 GiB download" "$out" 1073741824

# --- shells, env ---
out=$(printf 'echo shell-$((6*7))\nexit 3\n' | $S -T box); rc=$?
is "shell without pty runs a script from stdin" "$out" "shell-42"
is "shell without pty exit status" "$rc" 3
out=$(LANG=C.UTF-8 $S -o SendEnv=LANG -o SetEnv=LD_PRELOAD=/nonexistent.so box \
	'echo "$LANG/${LD_PRELOAD-unset}"')
is "env LANG passed, LD_PRELOAD ignored" "$out" "C.UTF-8/unset"

# --- sftp, scp, rsync ---
$S box "cat > $T/up.bin" <"$T/big"
mkdir -p "$T/sf"
timeout 60 scp -q -F "$T/cfg" "$T/big" "box:$T/sf/scp.bin" &&
	timeout 60 scp -q -F "$T/cfg" "box:$T/sf/scp.bin" "$T/scp.back"
is "scp (sftp protocol) round trip" "$(sha256sum <"$T/scp.back" 2>/dev/null | cut -d' ' -f1)" "$want"
printf 'put %s %s\nrename %s %s\nget %s %s\nls %s\n' "$T/big" "$T/sf/a" "$T/sf/a" "$T/sf/b" \
	"$T/sf/b" "$T/sftp.back" "$T/sf" | timeout 60 sftp -q -F "$T/cfg" -b - box >/dev/null 2>&1
is "sftp put/rename/get" "$(sha256sum <"$T/sftp.back" 2>/dev/null | cut -d' ' -f1)" "$want"
if command -v rsync >/dev/null; then
	mkdir -p "$T/rs/d"; echo one >"$T/rs/d/x"; cp "$T/big" "$T/rs/big"
	timeout 60 rsync -a --delete -e "ssh -F $T/cfg" "$T/rs/" "box:$T/rs2/" &&
		diff -r "$T/rs" "$T/rs2" >/dev/null && ok "rsync upload" || nok "rsync upload"
	echo two >"$T/rs2/d/z"
	timeout 60 rsync -a --delete -e "ssh -F $T/cfg" "box:$T/rs2/" "$T/rs3/" &&
		diff -r "$T/rs2" "$T/rs3" >/dev/null && ok "rsync download" || nok "rsync download"
else
	skip "rsync not installed"; skip "rsync not installed"
fi

# --- forwarding ---
mkdir -p "$T/www"; echo hello-www >"$T/www/index.html"
(cd "$T/www" && exec python3 -m http.server --bind 127.0.0.1 0 >"$T/http.log" 2>&1) &
PIDS="$PIDS $!"
for _ in $(seq 50); do grep -q 'port [0-9]' "$T/http.log" 2>/dev/null && break; sleep 0.1; done
HP=$(grep -o 'port [0-9]*' "$T/http.log" | head -1 | awk '{print $2}')
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
out=$(printf 'GET / HTTP/1.0\r\n\r\n' | $S -W "127.0.0.1:$HP" box | tail -1)
is "ssh -W to a loopback service" "$out" "hello-www"
LP=$(freeport)
$S -o ExitOnForwardFailure=yes -L "127.0.0.1:$LP:localhost:$HP" -N box &
LPID=$!; PIDS="$PIDS $LPID"
out=""
for _ in $(seq 50); do out=$(curl -s -m 5 "http://127.0.0.1:$LP/") && [ -n "$out" ] && break; sleep 0.1; done
is "ssh -L to localhost" "$out" "hello-www"
kill $LPID 2>/dev/null
DP=$(freeport)
$S -o ExitOnForwardFailure=yes -D "127.0.0.1:$DP" -N box &
DPID=$!; PIDS="$PIDS $DPID"
out=""
for _ in $(seq 50); do out=$(curl -s -m 5 --socks5-hostname "127.0.0.1:$DP" "http://127.0.0.1:$HP/") && [ -n "$out" ] && break; sleep 0.1; done
is "ssh -D with curl --socks5-hostname" "$out" "hello-www"
kill $DPID 2>/dev/null
echo x | $S -W 192.0.2.1:80 box >/dev/null 2>&1
is "direct-tcpip to a non-loopback address refused" "$?" 255
echo x | $S -W "127.0.0.1:$(freeport)" box >/dev/null 2>&1
is "direct-tcpip to a closed loopback port fails" "$?" 255

# --- several sessions on one connection, keepalives ---
$S -o ControlMaster=yes -o ControlPath="$T/cm" -o ControlPersist=no -N box &
PIDS="$PIDS $!"
for _ in $(seq 50); do [ -S "$T/cm" ] && break; sleep 0.1; done
$S -o ControlPath="$T/cm" box 'sleep 1; echo a' >"$T/cm.a" &
c1=$!
$S -o ControlPath="$T/cm" box 'sleep 1; echo b' >"$T/cm.b" &
c2=$!
wait $c1; r1=$?; wait $c2; r2=$?
is "ControlMaster: two concurrent sessions" "$(cat "$T/cm.a" "$T/cm.b" | tr -d '\n')/$r1/$r2" "ab/0/0"
out=$($S -o ServerAliveInterval=1 -o ServerAliveCountMax=2 box 'sleep 4; echo alive')
is "client keepalives answered" "$out" "alive"

# --- paramiko: exit status, exit-signal, signal requests ---
if $PY -c 'import paramiko' 2>/dev/null; then
	out=$(timeout 60 $PY - "$PORT" "$T/id" <<'EOF' 2>&1
import sys, paramiko
from paramiko.message import Message
from paramiko.common import cMSG_CHANNEL_REQUEST
c = paramiko.SSHClient()
c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=int(sys.argv[1]), username="box", key_filename=sys.argv[2],
          look_for_keys=False, allow_agent=False, timeout=10)
t = c.get_transport()
res = []
ch = t.open_session(); ch.exec_command("exit 7")
res.append(ch.recv_exit_status())
ch = t.open_session(); ch.exec_command("kill -TERM $$")
res.append(ch.recv_exit_status() if ch.status_event.wait(10) else "hang")
ch = t.open_session()
ch.exec_command("trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 0.1; done")
ch.settimeout(10)
buf = b""
while b"ready" not in buf:
    buf += ch.recv(100)
m = Message(); m.add_byte(cMSG_CHANNEL_REQUEST); m.add_int(ch.remote_chanid)
m.add_string("signal"); m.add_boolean(False); m.add_string("INT")
t._send_user_message(m)
res.append(ch.recv_exit_status() if ch.status_event.wait(10) else "hang")
print(" ".join(str(x) for x in res))
EOF
)
	is "paramiko: exit 7, signal-killed -1 without hanging, signal INT" "$out" "7 -1 3"
else
	skip "python3 paramiko not installed"
fi

# --- PTY through tmux ---
if command -v tmux >/dev/null; then
	tm() { tmux -L "$TMUX_SOCK" -f /dev/null "$@"; }
	waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
	tm new-session -d -s t -x 100 -y 30 "ssh -F $T/cfg -t box"
	sleep 1
	tm send-keys -t t "tput cols > $T/cols1" Enter
	waitfile "$T/cols1"
	tm resize-window -t t -x 120 -y 30
	sleep 0.5
	tm send-keys -t t "tput cols > $T/cols2" Enter
	waitfile "$T/cols2"
	is "pty: tput cols follows a resize" "$(cat "$T/cols1" 2>/dev/null)/$(cat "$T/cols2" 2>/dev/null)" "100/120"
	tm send-keys -t t "sleep 100; echo after > $T/int" Enter
	sleep 0.5
	tm send-keys -t t C-c
	sleep 0.3
	tm send-keys -t t "echo alive > $T/alive" Enter
	waitfile "$T/alive"
	is "pty: Ctrl-C interrupts sleep 100" "$(cat "$T/alive" 2>/dev/null)/$([ -e "$T/int" ] && echo ran || echo interrupted)" "alive/interrupted"
	tm send-keys -t t "stty -a > $T/stty" Enter
	waitfile "$T/stty"
	grep -q 'iutf8' "$T/stty" && ! grep -q -- '-icrnl' "$T/stty" && ok "pty: icrnl and iutf8 set" || nok "pty: icrnl and iutf8 set"
	tm send-keys -t t "sleep 100 &" Enter
	sleep 0.3
	tm send-keys -t t "exit" Enter
	gone=no
	for _ in $(seq 100); do tm has-session -t t 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
	is "pty: logout with a background job does not hang" "$gone" yes
	tm kill-server 2>/dev/null
else
	for _ in 1 2 3 4; do skip "tmux not installed"; done
fi

# --- relay preface ---
out=$($S -o "ProxyCommand $RELAY $RPORT box $SECRET" box 'echo via-relay')
is "relay: valid preface, then SSH" "$out" "via-relay"
grep -q "relay:box" "$T/records" && ok "relay: session recorded as relay:box" || nok "relay: session recorded as relay:box"
nonce=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
$RELAY "$RPORT" box "$SECRET" --check --nonce "$nonce" >/dev/null
out=$($RELAY "$RPORT" box "$SECRET" --check --nonce "$nonce")
is "relay: replayed nonce refused" "$out" "ERR nonce replayed"
out=$($RELAY "$RPORT" box "$SECRET" --check --ts-offset -400)
is "relay: expired timestamp refused" "$out" "ERR timestamp outside the allowed skew"
out=$($RELAY "$RPORT" box "$SECRET" --check --long)
is "relay: over-long line refused" "$out" "ERR line too long"
out=$($RELAY "$RPORT" box wrong-secret --check)
is "relay: wrong secret refused" "$out" "ERR bad signature"
$S -o "ProxyCommand $RELAY $RPORT other $SECRET" other true 2>/dev/null
is "relay: preface for another sandbox cannot log in" "$?" 255

# --- a killed connection process leaves others alone ---
before=$(grep -c '^start' "$T/records")
$S box 'sleep 3; echo survived' >"$T/survivor" &
spid=$!
for _ in $(seq 50); do [ "$(grep -c '^start' "$T/records")" -gt "$before" ] && break; sleep 0.1; done
$S box 'sleep 30' >/dev/null 2>&1 &
vpid=$!
for _ in $(seq 50); do [ "$(grep -c '^start' "$T/records")" -gt $((before + 1)) ] && break; sleep 0.1; done
victim=$(grep '^start' "$T/records" | tail -1 | awk '{print $NF}')
[ -n "$victim" ] && kill -9 "$victim"
wait $vpid 2>/dev/null
wait $spid; rc=$?
is "kill -9 of one connection process leaves another session running" "$(cat "$T/survivor")/$rc" "survived/0"

echo "1..$n"
