#!/bin/bash
# moatd end to end with real clients: ssh, scp, sftp, rsync, paramiko,
# tmux; sessions in the sandbox; proxy variables; relay preface.
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
cat > "$OBJ/allow-curl.json" <<EOP
{"version":1,"network_policies":{"up":{"name":"up",
 "endpoints":[{"host":"upstream.test","port":80}],
 "binaries":[{"path":"/usr/bin/curl"}]}}}
EOP
moatd_setup box:"$OBJ/allow-curl.json" other
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
t_ok "moatd starts with two sandboxes"

is "exec exit 0" "$($SSH box true; echo $?)" 0
is "exec exit 7" "$($SSH box 'exit 7'; echo $?)" 7
is "exec output" "$($SSH box echo hello)" hello
is "whoami is the sandbox user" "$($SSH box whoami)" sandbox
is "HOME is the workspace" "$($SSH box 'echo $HOME')" /sandbox
is "hostname is the sandbox name" "$($SSH box hostname)" box
is "signal-killed command: ssh reports 255" "$($SSH box 'kill -TERM $$'; echo $?)" 255
is "trailing output after a background job" \
	"$($SSH box '(sleep 1; echo late) & echo early' | tr '\n' ' ')" "early late "
is "stdin EOF reaches the child" "$(echo hi | $SSH box 'wc -c')" 3
is "ssh -T shell without pty answers a script" \
	"$(printf 'echo one\necho two\nexit 3\n' | $SSH -T box; echo rc=$?)" "$(printf 'one\ntwo\nrc=3')"
is "proxy variables are set" "$($SSH box 'echo $HTTP_PROXY $https_proxy $NODE_USE_ENV_PROXY' | awk '{print ($1==$2 && $1 ~ /^http:\/\/10\./ && $3==1)}')" 1
is "curl through the proxy reaches the allowed upstream" \
	"$($SSH box 'curl -sS -m 10 http://upstream.test/')" upstream-ok
t_not "curl to the upstream directly (bypass) fails" $SSH box "curl -sS -m 5 --noproxy '*' http://$UP_ADDR/"
t "direct bypass fails fast (under 3 s)" bash -c "s=\$(date +%s%N); $SSH box 'curl -s -m 20 --noproxy \"*\" http://$UP_ADDR/'; e=\$(date +%s%N); [ \$(( (e-s)/1000000 )) -lt 3000 ]"

# stdin EOF with binary data, 20 times in a row
head -c 64M /dev/urandom > "$OBJ/blob"
want=$(sha256sum < "$OBJ/blob" | cut -d' ' -f1)
bad=0
for i in $(seq 20); do
	got=$($SSH box sha256sum < "$OBJ/blob" | cut -d' ' -f1)
	[ "$got" = "$want" ] || bad=$((bad + 1))
done
is "64 MiB through stdin, sha256 equal 20 times" "$bad" 0
is "1 GiB upload" "$(head -c 1G /dev/zero | $SSH box 'wc -c')" 1073741824
is "1 GiB download" "$($SSH box 'head -c 1G /dev/zero' | wc -c)" 1073741824

# env: LANG allowed, LD_PRELOAD ignored
is "env LANG passed" "$(LANG=C.UTF-8 $SSH -o SendEnv=LANG box 'echo $LANG')" C.UTF-8
is "env LD_PRELOAD ignored" "$($SSH -o SetEnv=LD_PRELOAD=/x.so box 'echo x${LD_PRELOAD}x')" xx

# scp, sftp, rsync round trips
head -c 5M /dev/urandom > "$OBJ/f1"
t "scp upload" scp -F "$OBJ/ssh_config" -q "$OBJ/f1" box:f1
t "scp download" scp -F "$OBJ/ssh_config" -q box:f1 "$OBJ/f1.back"
is "scp round trip sums" "$(sha256sum < "$OBJ/f1.back")" "$(sha256sum < "$OBJ/f1")"
printf 'put %s/f1 f2\nget f2 %s/f2.back\nrename f2 f3\nls\n' "$OBJ" "$OBJ" > "$OBJ/sftp.batch"
t "sftp batch (put, get, rename, ls)" sftp -F "$OBJ/ssh_config" -q -b "$OBJ/sftp.batch" box
is "sftp round trip sums" "$(sha256sum < "$OBJ/f2.back")" "$(sha256sum < "$OBJ/f1")"
mkdir -p "$OBJ/tree/a/b" && head -c 100k /dev/urandom > "$OBJ/tree/a/b/x" && echo y > "$OBJ/tree/y"
t "rsync upload" rsync -a -e "ssh -F $OBJ/ssh_config" "$OBJ/tree/" box:tree/
t "rsync download" rsync -a -e "ssh -F $OBJ/ssh_config" box:tree/ "$OBJ/tree.back/"
t "rsync round trip identical" diff -r "$OBJ/tree" "$OBJ/tree.back"

# two sessions of a sandbox share its processes; another sandbox does not
$SSH box 'sleep 30' & sp=$!
on_cleanup "kill $sp"
sleep 1
t "a second session sees the first session's process" $SSH box 'pgrep -x sleep'
t_not "another sandbox does not see it" $SSH other 'pgrep -x sleep'
kill $sp 2>/dev/null

# port forwarding to a server started inside the sandbox
$SSH box 'cd /tmp && echo fwd-ok > index.html && exec python3 -m http.server 8765 --bind 127.0.0.1' >/dev/null 2>&1 &
hp=$!
on_cleanup "kill $hp"
for _ in $(seq 50); do $SSH box 'exec 3<>/dev/tcp/127.0.0.1/8765' 2>/dev/null && break; sleep 0.2; done
lp=$(free_port)
$SSH -N -L "$lp:127.0.0.1:8765" box & fp=$!
on_cleanup "kill $fp"
for _ in $(seq 50); do curl -s "http://127.0.0.1:$lp/" >/dev/null 2>&1 && break; sleep 0.1; done
is "-L forward reaches a server in the sandbox" "$(curl -s -m 5 "http://127.0.0.1:$lp/")" fwd-ok
is "-W reaches it" "$(printf 'GET / HTTP/1.0\r\n\r\n' | $SSH -W 127.0.0.1:8765 box | tail -n 1)" fwd-ok
dp=$(free_port)
$SSH -N -D "$dp" box & sp2=$!
on_cleanup "kill $sp2"
for _ in $(seq 50); do curl -s --socks5-hostname "127.0.0.1:$dp" http://127.0.0.1:8765/ >/dev/null 2>&1 && break; sleep 0.1; done
is "-D SOCKS reaches it" "$(curl -s -m 5 --socks5-hostname "127.0.0.1:$dp" http://127.0.0.1:8765/)" fwd-ok
t_not "direct-tcpip to a non-loopback address is refused" \
	bash -c "printf 'GET / HTTP/1.0\r\n\r\n' | $SSH -W $UP_ADDR:80 box | grep -q upstream-ok"

# the VS Code flow: a no-pty bash fed a script that starts a loopback
# server and prints a marker, then a request through the SOCKS port
vp=$(free_port)
mkfifo "$OBJ/vsin"
( $SSH -T -D "$vp" box bash < "$OBJ/vsin" > "$OBJ/vsout" 2>&1 ) & vsp=$!
on_cleanup "kill $vsp"
exec 7> "$OBJ/vsin"
echo 'mkdir -p /tmp/vs && echo vscode-ok > /tmp/vs/index.html; (cd /tmp/vs && exec python3 -m http.server 8799 --bind 127.0.0.1 >/dev/null 2>&1 &); sleep 1; echo listeningOn==8799==' >&7
for _ in $(seq 50); do grep -q 'listeningOn==8799==' "$OBJ/vsout" 2>/dev/null && break; sleep 0.1; done
t "VS Code style install script prints its marker" grep -q 'listeningOn==8799==' "$OBJ/vsout"
is "VS Code style SOCKS request reaches the server" \
	"$(curl -s -m 5 --socks5-hostname "127.0.0.1:$vp" http://127.0.0.1:8799/)" vscode-ok
exec 7>&-

# interactive PTY through tmux; every step polls (bounded) for its result
tm="moate2e$$"
screen_has() {	# PATTERN: wait up to 10 s for a screen line matching it
	for _ in $(seq 100); do
		tmux capture-pane -p -t "$tm" 2>/dev/null | grep -qx "$1" && return 0
		sleep 0.1
	done
	return 1
}
tmux new-session -d -s "$tm" -x 100 -y 30 "$SSH -t box"
on_cleanup "tmux kill-session -t $tm"
tmux send-keys -t "$tm" 'echo READY-$((1+1))' Enter
screen_has 'READY-2' || diag "the pty shell did not start"
tmux send-keys -t "$tm" 'tput cols' Enter
t "pty: tput cols follows the terminal (100)" screen_has 100
tmux resize-window -t "$tm" -x 120 -y 30 2>/dev/null || tmux resize-pane -t "$tm" -x 120
sleep 0.3
tmux send-keys -t "$tm" 'tput cols' Enter
t "pty: window-change reaches the shell (120)" screen_has 120
tmux send-keys -t "$tm" 'sleep 100; echo after-sleep' Enter
sleep 0.5
tmux send-keys -t "$tm" C-c
tmux send-keys -t "$tm" 'echo alive-$((6*7))' Enter
t "pty: Ctrl-C interrupts sleep" screen_has alive-42
tmux kill-session -t "$tm" 2>/dev/null
# the pty comes from the sandbox's own devpts: it has a name inside and
# belongs to the sandbox user
is "pty: tty names it and the sandbox user owns it" \
	"$($SSH -tt box 't=$(tty) && stat -c "%U %a" "$t" && case $t in /dev/pts/[0-9]*) echo pts;; esac' < /dev/null 2>/dev/null | tr -d '\r' | tr '\n' ' ')" "sandbox 620 pts "

# paramiko
cat > "$OBJ/pm.py" <<EOP
import paramiko, sys
k = paramiko.Ed25519Key.from_private_key_file("$OBJ/id_user")
c = paramiko.SSHClient(); c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=$SSH_PORT, username="box", pkey=k, allow_agent=False, look_for_keys=False)
_, o, _ = c.exec_command("echo pm-ok; exit 5")
out = o.read().decode().strip(); rc = o.channel.recv_exit_status()
_, o2, _ = c.exec_command("kill -KILL \$\$")
rc2 = o2.channel.recv_exit_status()
sftp = c.open_sftp(); sftp.put("$OBJ/f1", "pm.bin"); sftp.get("pm.bin", "$OBJ/pm.back"); sftp.close()
print(out, rc, rc2)
EOP
is "paramiko exec, exit status, signal death, sftp" "$(timeout 60 /usr/bin/python3 "$OBJ/pm.py")" "pm-ok 5 -1"
is "paramiko sftp sums" "$(sha256sum < "$OBJ/pm.back")" "$(sha256sum < "$OBJ/f1")"

# refusals
t_not "a wrong key is refused" ssh -F /dev/null -p "$SSH_PORT" -i "$OBJ/id_other" \
	-o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	-o BatchMode=yes box@127.0.0.1 true
ssh -v -F "$OBJ/ssh_config" -o IdentityFile="$OBJ/id_other" box true > "$OBJ/probe.log" 2>&1
t_not "the key probe does not accept an unauthorized key" grep -q "Server accepts key: $OBJ/id_other" "$OBJ/probe.log"
t_not "an unknown sandbox is refused" ssh -F "$OBJ/ssh_config" -o User=nosuch box true
sleep 0.3
t "the operator's log says why: wrong key" grep -q "login failed for box .*no authorized key" "$OBJ/moatd.log"
t "the operator's log says why: unknown sandbox" grep -q "login failed for nosuch .*no sandbox of that name" "$OBJ/moatd.log"

# relay: moat ssh-proxy with the signed preface; replayed/expired refused
cat >> "$OBJ/ssh_config" <<EOC
Host relayed
  User box
  ProxyCommand $MOAT ssh-proxy box
  IdentityFile $OBJ/id_user
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
EOC
is "ssh through the relay socket (ProxyCommand moat ssh-proxy)" "$($SSH relayed echo relayed-ok)" relayed-ok
cat > "$OBJ/relay.py" <<'EOP'
import hashlib, hmac, os, socket, sys, time
secret = open(os.environ["MOAT_STATE"] + "/relay.secret").read().strip()
def pre(ts, nonce):
    mac = hmac.new(secret.encode(), f"MOAT1|box|{ts}|{nonce}".encode(), hashlib.sha256).hexdigest()
    return f"MOAT1 box {ts} {nonce} {mac}\n".encode()
def ask(line):
    s = socket.socket(socket.AF_UNIX); s.connect(os.environ["MOAT_STATE"] + "/relay.sock")
    s.sendall(line); s.settimeout(5)
    r = b""
    while not r.endswith(b"\n"):
        b = s.recv(1)
        if not b: break
        r += b
    s.close(); return r.decode().split(" ")[0].strip()
n = os.urandom(16).hex(); now = int(time.time())
print(ask(pre(now, n)), ask(pre(now, n)), ask(pre(now - 3600, os.urandom(16).hex())),
      ask(b"MOAT1 " + b"x" * 2000 + b"\n"))
EOP
is "relay preface: fresh OK, replay refused, expired refused, long line refused" \
	"$(timeout 30 /usr/bin/python3 "$OBJ/relay.py")" "OK ERR ERR ERR"

# a killed connection process does not affect another session
$SSH box 'sleep 5; echo survivor' > "$OBJ/surv" 2>&1 & keep=$!
$SSH box 'exec sleep 31' & victim=$!
for _ in $(seq 100); do pgrep -x -f 'sleep 31' >/dev/null && break; sleep 0.1; done
# The victim's connection: its monitor, the nearest moat-ssh-mon above its sleep.
vpid=$(pgrep -x -f 'sleep 31' | head -n 1)
while [ -n "$vpid" ] && [ "$vpid" != 1 ] && [ "$(cat /proc/$vpid/comm 2>/dev/null)" != moat-ssh-mon ]; do
	vpid=$(awk '{print $4}' /proc/$vpid/stat 2>/dev/null)
done
[ -n "$vpid" ] && [ "$vpid" != "$MOATD_PID" ] && kill -KILL "$vpid"
wait $keep
is "killing one connection process leaves another session intact" "$(cat "$OBJ/surv")" survivor
kill $victim 2>/dev/null

# a client that goes away hangs up its exec command (no pty)
$SSH box 'sleep 1017' < /dev/null & hup=$!
for _ in $(seq 100); do pgrep -x -f 'sleep 1017' >/dev/null && break; sleep 0.1; done
kill -KILL "$hup"; wait "$hup" 2>/dev/null
for _ in $(seq 50); do pgrep -x -f 'sleep 1017' >/dev/null || break; sleep 0.1; done
t_not "a vanished client's exec command is hung up" pgrep -x -f 'sleep 1017'

# sessions recorded
sleep 1
t "moat sessions lists sessions with key and address" sh -c "$MOAT sessions --sandbox box | grep -q 127.0.0.1"
t "moat ssh-config prints a Host block" sh -c "$MOAT ssh-config box | grep -q 'ProxyCommand.*ssh-proxy box'"
t_not "moat ssh-config refuses a sandbox that does not exist" $MOAT ssh-config nosuch
t "and names the known ones" sh -c "$MOAT ssh-config nosuch 2>&1 | grep -q 'known: .*box'"

stop_moatd
t "SIGTERM stops moatd and leaves no netns behind" sh -c "! ip netns list | grep -q 'moat-box'"
done_testing
