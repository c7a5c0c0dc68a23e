#!/bin/bash
# moatd's lifecycle: config errors name file and field and nothing
# starts; non-root is refused with how to run it; SIGHUP reloads policy
# files (an invalid one keeps the active version); the host key is made
# once (0600) and kept across restarts.
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }

echo '{"state_dir":"/tmp/x","listen":[{"addr":"127.0.0.1","port":1}],"sandboxes":[{"name":"a","bogus":1}]}' > "$OBJ/bad1.json"
out=$("$MOATD" -c "$OBJ/bad1.json" 2>&1); rc=$?
is "an unknown config field: exit 100" "$rc" 100
t "the error names the file and the field" sh -c "echo '$out' | grep -q 'bad1.json: sandboxes\[0\].bogus: unknown field'"
echo '{"sandboxes":[{"name":"a","policy":"'"$OBJ"'/badpol.json"}],"listen":[{"addr":"127.0.0.1","port":1}]}' > "$OBJ/bad2.json"
echo '{"version":1,"network_policies":{"x":{"endpoints":[{"host":"a.test","port":70000}]}}}' > "$OBJ/badpol.json"
out=$("$MOATD" -c "$OBJ/bad2.json" --check 2>&1); rc=$?
is "an invalid policy: --check exits 100" "$rc" 100
t "the error names the JSON path" sh -c "echo '$out' | grep -q 'network_policies.x.endpoints\[0\].port'"
# The policy's text in moatd's diagnostics is escaped, as in its log.
printf '{"version":1,"network_policies":{"x":{"endpoints":[{"host":"a\\u001b]0;t\\u0007.test","port":1}],"binaries":[{"path":"/opt/b\\u001b[2J"}]}}}' > "$OBJ/badpol.json"
out=$("$MOATD" -c "$OBJ/bad2.json" --check 2>&1)
t "--check prints no raw control byte of the policy" sh -c "! printf '%s' \"\$1\" | LC_ALL=C grep -q '[$(printf '\001-\011\013-\037\177')]' && printf '%s' \"\$1\" | grep -qF '/opt/b\\x1b[2J'" _ "$out"
echo '{not json' > "$OBJ/bad3.json"
t "malformed JSON names file, line and column" sh -c "$MOATD -c $OBJ/bad3.json 2>&1 | grep -q 'bad3.json:1:'"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$MOATD" 2>&1); rc=$?
is "as non-root: exit 100" "$rc" 100
t "and it says it needs root and how to run it" sh -c "echo '$out' | grep -q 'must run as root' && echo '$out' | grep -q 'sudo'"

# SIGHUP reload of a policy file
cat > "$OBJ/pol.json" <<EOP
{"version":1,"network_policies":{}}
EOP
moatd_setup box:"$OBJ/pol.json"
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
is "denied before the reload" "$($SSH box 'curl -s -o /dev/null -w %{http_code} http://upstream.test/')" 403
cat > "$OBJ/pol.json" <<EOP
{"version":1,"network_policies":{"up":{"endpoints":[{"host":"upstream.test","port":80}],"binaries":[{"path":"/usr/bin/curl"}]}}}
EOP
kill -HUP "$MOATD_PID"
got=""
for _ in $(seq 20); do
	got=$($SSH box 'curl -s -m 5 http://upstream.test/')
	[ "$got" = upstream-ok ] && break
	sleep 0.1
done
is "SIGHUP applies the edited policy file" "$got" upstream-ok
t "it is a new version with source file" sh -c "$MOAT policy history box | grep -c file | grep -qx 2"
echo '{"version":1,"network_policies":{"up":{"endpoints":[{"host":"*","port":80}]}}}' > "$OBJ/pol.json"
kill -HUP "$MOATD_PID"
sleep 0.5
is "an invalid edit keeps the active version" "$($SSH box 'curl -s -m 5 http://upstream.test/')" upstream-ok
t "moatd logged why" grep -q "keeping version 2" "$OBJ/moatd.log"

# the host key: made once, 0600, kept
key="$OBJ/var/ssh_host_ed25519_key"
is "host key mode is 0600" "$(stat -c %a "$key")" 600
is "the ready banner prints the host key fingerprint ssh will show" \
	"$(grep -o 'Host key: ED25519 SHA256:[^ ]*' "$OBJ/moatd.log" | awk '{print $4}')" \
	"$(ssh-keygen -lf "$key" | awk '{print $2}')"
fp1=$(ssh-keygen -lf "$key" | awk '{print $2}')
stop_moatd
# Back to the valid file (an invalid one would keep moatd from starting).
cat > "$OBJ/pol.json" <<EOP
{"version":1,"network_policies":{"up":{"endpoints":[{"host":"upstream.test","port":80}],"binaries":[{"path":"/usr/bin/curl"}]}}}
EOP
start_moatd "$CFG" || t_fail "moatd restarts"
is "the host key survives a restart" "$(ssh-keygen -lf "$key" | awk '{print $2}')" "$fp1"
is "and the active policy too (from the store)" "$($SSH box 'curl -s -m 5 http://upstream.test/')" upstream-ok
stop_moatd

# The embedded config's shape (make run): state_dir and workspace are
# relative, taken from the directory moatd starts in; the sandbox's CA
# files are found from inside its new root all the same.
mkdir -p "$OBJ/rel"
printf '{"state_dir":"var","listen":[{"addr":"127.0.0.1","port":%s}],"proxy":{"port":%s,"hosts_file":"%s/hosts"},"sandboxes":[{"name":"box","workspace":"var/ws","authorized_keys":["%s"]}]}' \
	"$SSH_PORT" "$PROXY_PORT" "$OBJ" "$(cat "$OBJ/id_user.pub")" > "$OBJ/rel/moatd.json"
cd "$OBJ/rel" || exit 1
start_moatd moatd.json ||
	t_fail "moatd starts with a relative state_dir"
cd - >/dev/null || exit 1
is "a relative state_dir: a login works, the CA is in the sandbox" \
	"$($SSH box 'test -s /run/moat/ca.pem && id -un' 2>&1)" sandbox
[ -n "$T_LAST_FAILED" ] && diag "$(tail -n 5 "$OBJ/moatd.log")"
t "the state is under the starting directory" test -f "$OBJ/rel/var/moat.db"
stop_moatd
done_testing
