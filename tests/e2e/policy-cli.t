#!/bin/sh
# `moat policy check` and `moat policy explain` on presets and on broken
# policies: output lines and exit codes (0 ok/allow, 1 invalid/deny,
# 100 usage).
cd "$(dirname "$0")/../.." || exit 1
moat=${MOAT_BUILD:-build/rel}/moat
n=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else
	echo "not ok $n - $2"; [ -n "$3" ] && echo "$3" | sed 's/^/# /' >&2; fi; }
if [ ! -x "$moat" ]; then echo "1..0 # SKIP $moat not built"; exit 0; fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

out=$("$moat" policy check policies/presets/all-dev.json 2>&1); rc=$?
t $rc "check all-dev.json exits 0" "$out"
echo "$out" | grep -q '^policies/presets/all-dev.json: ok, 7 network policies, 35 endpoints$'
t $? "check prints the summary" "$out"

printf '{"version":1,"network_policies":{"npm":{"endpoints":[{"host":"a.com","port":1},{"host":"b.com","port":1},{"host":"*.com","prot":1,"port":0}],"binaries":[{"path":"/usr/bin/node"}]}}}' >"$tmp/bad.json"
out=$("$moat" policy check "$tmp/bad.json" 2>&1); rc=$?
[ $rc -eq 1 ]; t $? "invalid policy exits 1 (got $rc)" "$out"
echo "$out" | grep -qF "$tmp/bad.json: error: network_policies.npm.endpoints[2].prot: unknown field"
t $? "unknown field named by its path" "$out"
echo "$out" | grep -qF "$tmp/bad.json: 3 errors"
t $? "every error counted" "$out"

out=$("$moat" policy explain policies/presets/all-dev.json --binary /usr/bin/node \
	--ancestor /usr/local/bin/claude --host API.anthropic.com. --port 443 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = "allow (policy anthropic)" ]
t $? "explain allows node under claude" "$out"
out=$("$moat" policy explain policies/presets/all-dev.json --binary /usr/bin/curl \
	--host pypi.org --port 443 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "^deny: endpoint pypi.org:443 is in policy 'pypi' but binary '/usr/bin/curl'"
t $? "explain names the half that failed" "$out"
out=$("$moat" policy explain policies/presets/deny-all.json --binary /usr/bin/curl \
	--host pypi.org --port 443 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$out" = "deny: network connections not allowed by policy" ]
t $? "deny-all denies" "$out"

out=$("$moat" policy explain policies/presets/github-readonly.json --binary /usr/lib/git-core/git-remote-https \
	--ancestor /usr/bin/git --host github.com --port 443 --method POST --path /o/r.git/git-upload-pack 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = "allow (policy github)" ]
t $? "explain a request: github-readonly allows fetch (upload-pack)" "$out"
out=$("$moat" policy explain policies/presets/github-readonly.json --binary /usr/lib/git-core/git-remote-https \
	--ancestor /usr/bin/git --host github.com --port 443 --method POST --path /o/r.git/../r.git/git-receive-pack 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "^deny: POST /o/r.git/git-receive-pack matches a deny rule of endpoint github.com:443 in policy 'github'"
t $? "explain a request: github-readonly denies push (receive-pack)" "$out"
"$moat" policy explain policies/presets/github-readonly.json --binary /usr/bin/git \
	--host github.com --port 443 --method GET >/dev/null 2>&1
rc=$?; [ $rc -eq 100 ]; t $? "--method without --path is a usage error ($rc)"
# A binary the sandbox can write is granted to whatever is put there.
printf '{"version":1,"filesystem_policy":{"read_write":["/srv/w"]},"network_policies":{"p":{"endpoints":[{"host":"pypi.org","port":443}],"binaries":[{"path":"/sandbox/.venv/bin/*"},{"path":"/srv/w/tool"},{"path":"/usr/bin/git"}]}}}' >"$tmp/w.json"
out=$("$moat" policy check "$tmp/w.json" 2>&1); rc=$?
t $rc "a writable binary path is a warning, not an error" "$out"
echo "$out" | grep -qF "$tmp/w.json: warning: network_policies.p.binaries[0].path: /sandbox/.venv/bin/* is in /sandbox (the workspace), which the sandbox can write"
t $? "check warns about a binary in the workspace" "$out"
echo "$out" | grep -qF "network_policies.p.binaries[1].path: /srv/w/tool is in /srv/w (a read_write path)"
t $? "check warns about a binary in a read_write path" "$out"
echo "$out" | grep -q "binaries\[2\].path: .*sandbox can write"
[ $? -ne 0 ]; t $? "but not about /usr/bin/git" "$out"
for f in policies/presets/*.json; do
	"$moat" policy check "$f" 2>&1 | grep -q "sandbox can write"
	[ $? -ne 0 ]; t $? "preset $f grants no binary the sandbox can write"
done

# An OpenShell policy with a dead endpoint loads: check warns at its path.
printf '{"version":1,"network_policies":{"os":{"endpoints":[{"host":"api.test","port":443},{"host":"127.0.0.1","port":80},{"host":"169.254.169.254","port":80},{"host":"kube.test","ports":[443,6443]}],"binaries":[{"path":"/usr/bin/curl"}]}}}' >"$tmp/dead.json"
out=$("$moat" policy check "$tmp/dead.json" 2>&1); rc=$?
[ $rc -eq 0 ]; t $? "a policy with a loopback, a metadata host and a control-plane port loads (exit $rc)" "$out"
echo "$out" | grep -qF "$tmp/dead.json: warning: network_policies.os.endpoints[1].host: 127.0.0.1 is an always-blocked address, which moat always refuses; the endpoint loads, but every connection to it is denied"
t $? "check warns about the loopback host at its path" "$out"
echo "$out" | grep -qF "$tmp/dead.json: warning: network_policies.os.endpoints[2].host: 169.254.169.254 is a cloud metadata address"
t $? "check warns about the metadata host at its path" "$out"
echo "$out" | grep -qF "$tmp/dead.json: warning: network_policies.os.endpoints[3].ports[1]: 6443 is a blocked control-plane port (Kubernetes API server)"
t $? "check warns about the control-plane port at its path" "$out"
echo "$out" | grep -qF "$tmp/dead.json: ok, 1 network policy, 4 endpoints"
t $? "and the policy is ok" "$out"
out=$("$moat" policy explain "$tmp/dead.json" --binary /usr/bin/curl --host api.test --port 443 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = "allow (policy os)" ]
t $? "the live endpoint of that policy still allows" "$out"
printf '{"version":1,"network_policies":{"os":{"endpoints":[{"host":"db.test","port":5432,"allowed_ips":["127.0.0.0/8"]}],"binaries":[{"path":"/usr/bin/curl"}]}}}' >"$tmp/aips.json"
out=$("$moat" policy check "$tmp/aips.json" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -qF "error: network_policies.os.endpoints[0].allowed_ips[0]: '127.0.0.0/8' overlaps loopback"
t $? "allowed_ips that can never work stay a load error (exit $rc)" "$out"

# The SSRF golden table through explain: the rows test_policy_addr and
# test_proxy_ssrf drive through the decision function and the real proxy.
UP=10.99.0.2
sub() { printf '%s' "$1" | sed "s/@UP/$UP/g"; }
rows=0
while IFS='	' read -r name host port eps verdict reason; do
	case $name in '#'*|'') continue ;; esac
	rows=$((rows + 1))
	printf '{"version":1,"network_policies":{"g":{"endpoints":[%s],"binaries":[{"path":"/golden/caller"}]}}}' \
		"$(sub "$eps")" >"$tmp/g.json"
	out=$("$moat" policy explain "$tmp/g.json" --binary /golden/caller \
		--host "$(sub "$host")" --port "$port" 2>&1); rc=$?
	if [ "$verdict" = allow ]; then
		[ $rc -eq 0 ] && [ "$out" = "allow (policy g)" ]
	else
		[ $rc -eq 1 ] && [ "$out" = "deny: $(sub "$reason")" ]
	fi
	t $? "explain: $name" "$out"
done <tests/fixtures/ssrf-verdicts.tsv
[ $rows -ge 20 ]; t $? "the golden table has $rows rows"

# Policy text may come from a sandbox (an agent wrote the file, a symlink
# inside the sandbox's root): check and explain print it escaped.
mkdir -p "$tmp/root/bin" "$tmp/root/opt"
esc=$(printf '\033')
bel=$(printf '\007')
: >"$tmp/root/opt/x${esc}]0;pwned${bel}${esc}[2Jy"
ln -s "/opt/x${esc}]0;pwned${bel}${esc}[2Jy" "$tmp/root/bin/tool"
printf '{"version":1,"network_policies":{"k":{"endpoints":[{"host":"h.test","port":443},{"host":"a\\u001b[31mb.test","port":1}],"binaries":[{"path":"/bin/tool"},{"path":"/opt/n\\u001b]2;t\\u0007\\u009b1m\\u202e"}]}}}' >"$tmp/esc.json"
out=$("$moat" policy check --binary-root "$tmp/root" "$tmp/esc.json" 2>&1)
! printf '%s' "$out" | LC_ALL=C grep -q "[$(printf '\001-\011\013-\037\177')]"
t $? "check prints no raw control byte of the policy's text" "$(printf '%s' "$out" | od -c | head -20)"
echo "$out" | grep -qF '/opt/x\x1b]0;pwned\x07\x1b[2Jy'
t $? "check shows the symlink target escaped" "$out"
printf '{"version":1,"network_policies":{"k":{"endpoints":[{"host":"h.test","port":443}],"binaries":[{"path":"/bin/tool"}]}}}' >"$tmp/esc2.json"
out=$("$moat" policy explain --binary-root "$tmp/root" "$tmp/esc2.json" \
	--binary "/usr/bin/x${esc}[8m" --host h.test --port 443 2>&1); rc=$?
[ $rc -eq 1 ] && ! printf '%s' "$out" | LC_ALL=C grep -q "[$(printf '\001-\011\013-\037\177')]" &&
	echo "$out" | grep -qF 'matches /opt/x\x1b]0;pwned\x07\x1b[2Jy'
t $? "explain prints the deny text escaped" "$(printf '%s' "$out" | od -c | head -20)"

"$moat" policy explain policies/presets/all-dev.json --host x --port 1 >/dev/null 2>&1
rc=$?; [ $rc -eq 100 ]; t $? "missing --binary is a usage error ($rc)"
"$moat" policy frobnicate >/dev/null 2>&1
rc=$?; [ $rc -eq 100 ]; t $? "unknown subcommand is a usage error ($rc)"
echo "1..$n"
