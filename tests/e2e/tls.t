#!/bin/bash
# TLS interception, L7 rules and credential injection end to end: moatd
# with two sandboxes, an HTTPS upstream (tests/helpers/tls_upstream.py)
# in a netns this test creates, with a certificate from a test CA made
# here with openssl(1) and trusted by moatd through proxy.upstream_ca_file.
# curl, git, python and node run in real ssh sessions and trust the
# sandbox CA with no flags. Names resolve through moat's hosts file only
# (github.com is the test upstream here).
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
SECRET="e2e-S3cret-$$-zQ"

# The test CA and the upstream's certificate.
mkdir -p "$OBJ/tls" "$OBJ/git/o"
( cd "$OBJ/tls" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout tca.key -out tca.pem -days 2 -subj /CN=moat-e2e-CA &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout up.key -out up.csr -subj /CN=api.test &&
  printf 'subjectAltName=DNS:api.test,DNS:other.test,DNS:audit.test,DNS:github.com\n' > ext &&
  openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial \
	-days 2 -extfile ext -out up.pem ) >/dev/null 2>&1 || { t_fail "test CA"; done_testing; exit 1; }
# A repository to clone (and to try to push to).
( cd "$OBJ" && git init -q -b main src && cd src &&
  git -c user.email=t@t -c user.name=t commit -q --allow-empty -m first &&
  git clone -q --bare . "$OBJ/git/o/r.git" ) || { t_fail "test repo"; done_testing; exit 1; }
chmod -R a+rwX "$OBJ/git"
ip netns exec "$UP_NS" /usr/bin/python3 "$TOP/tests/helpers/tls_upstream.py" \
	"$UP_ADDR" 443 "$OBJ/tls/up.pem" "$OBJ/tls/up.key" "$OBJ/git" >"$OBJ/up.log" 2>&1 &
on_cleanup "kill $!"
for _ in $(seq 50); do
	ip netns exec "$UP_NS" bash -c "exec 3<>/dev/tcp/$UP_ADDR/443" 2>/dev/null && break
	sleep 0.1
done

cat > "$OBJ/box.json" <<EOP
{"version":1,"network_policies":{
 "api":{"endpoints":[
  {"host":"api.test","port":443,"protocol":"rest","access":"read-only",
   "deny_rules":[{"method":"GET","path":"/private/**"}]},
  {"host":"other.test","port":443,"protocol":"rest","access":"full"},
  {"host":"audit.test","port":443,"protocol":"rest","access":"read-only",
   "enforcement":"audit"}],
  "binaries":[{"path":"/**"}]}}}
EOP
moatd_setup box:"$OBJ/box.json" gh:"$TOP/policies/presets/github-readonly.json"
echo "$UP_ADDR api.test other.test audit.test github.com" >> "$OBJ/hosts"
# proxy.upstream_ca_file and box's credential (from moatd's environment).
python3 - "$CFG" "$OBJ/tls/tca.pem" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["proxy"]["upstream_ca_file"] = sys.argv[2]
c["sandboxes"][0]["secrets"] = {"TOKEN": {"env": "MOAT_E2E_TOKEN",
                                          "hosts": ["api.test"]}}
json.dump(c, open(sys.argv[1], "w"))
EOF
MOAT_E2E_TOKEN="$SECRET" start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }
t_ok "moatd starts with TLS interception and a credential"

# ---- the sandbox CA ----
is "CA variables name the bundle (node: the CA)" \
	"$($SSH box 'echo $SSL_CERT_FILE $REQUESTS_CA_BUNDLE $CURL_CA_BUNDLE $GIT_SSL_CAINFO $NODE_EXTRA_CA_CERTS')" \
	"/run/moat/ca-bundle.pem /run/moat/ca-bundle.pem /run/moat/ca-bundle.pem /run/moat/ca-bundle.pem /run/moat/ca.pem"
is "the CA certificate and the bundle are there, read-only" \
	"$($SSH box 'ls /run/moat; head -1 /run/moat/ca.pem; touch /run/moat/x 2>/dev/null || echo ro')" \
	"$(printf 'ca-bundle.pem\nca.pem\n-----BEGIN CERTIFICATE-----\nro')"
is "no private key anywhere the sandbox can read" \
	"$($SSH box 'grep -rl "PRIVATE KEY" /run /etc/ssl /sandbox /tmp 2>/dev/null | wc -l')" 0
is "the CA key is root-only on the host" \
	"$(stat -c '%a %U' "$OBJ/var/sandboxes/box/ca.key")" "600 root"

# ---- L7 rules (read-only, deny, audit) with curl ----
out=$($SSH box 'curl -sS -m 10 https://api.test/hello?x=1')
case "$out" in *'"path": "/hello?x=1"'*) t_ok "curl GET through the terminated tunnel";;
	*) t_fail "curl GET through the terminated tunnel"; diag "$out";; esac
out=$($SSH box 'curl -sS -m 10 -X POST -d x=1 https://api.test/repos/o/r')
case "$out" in *'"error":"policy_denied"'*'"method":"POST"'*'"path":"/repos/o/r"'*) t_ok "POST on read-only: 403 naming method and path";;
	*) t_fail "POST on read-only: 403 naming method and path"; diag "$out";; esac
out=$($SSH box 'curl -sS -m 10 https://api.test/private/k')
case "$out" in *"matches a deny rule"*) t_ok "a deny rule beats read-only's GET";;
	*) t_fail "a deny rule beats read-only's GET"; diag "$out";; esac
out=$($SSH box 'curl -sS -m 10 --path-as-is https://api.test/pub/../private/k; curl -sS -m 10 https://api.test/pub%2f..%2fprivate%2fk')
case "$out" in *'"path": "/private'*|*'"path": "/pub'*) t_fail "traversal and encoded slashes never reach the upstream"; diag "$out";;
	*) t_ok "traversal and encoded slashes never reach the upstream";; esac
out=$($SSH box 'curl -sS -m 10 -X DELETE https://audit.test/x')
case "$out" in *'"method": "DELETE"'*) t_ok "audit: a denied request passes";;
	*) t_fail "audit: a denied request passes"; diag "$out";; esac

# ---- python and node trust the sandbox CA with no flags ----
# python3-requests is in tools/deps.sh's test set: never skipped.
out=$($SSH box "python3 -c 'import requests; print(requests.get(\"https://api.test/requests\", timeout=10).json()[\"path\"])'" 2>&1)
is "python requests trusts the sandbox CA" "$out" "/requests"
out=$($SSH box "python3 -c 'import urllib.request, json; print(json.load(urllib.request.urlopen(\"https://api.test/urllib\", timeout=10))[\"path\"])'" 2>&1)
is "python urllib trusts the sandbox CA" "$out" "/urllib"
cat > "$OBJ/node.js" <<'EOF'
// Node 20's https does not read HTTPS_PROXY: CONNECT by hand, then TLS
// with no CA option (NODE_EXTRA_CA_CERTS must supply the sandbox CA).
const http = require('http'), tls = require('tls');
const p = new URL(process.env.HTTPS_PROXY);
http.request({host: p.hostname, port: p.port, method: 'CONNECT',
              path: 'api.test:443'}).on('connect', (res, sock) => {
  const s = tls.connect({socket: sock, servername: 'api.test'}, () => {
    s.write('GET /node HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n');
  });
  let b = ''; s.on('data', d => b += d);
  s.on('end', () => console.log(/"path": "([^"]*)"/.exec(b)[1]));
  s.on('error', e => console.log('error ' + e.code));
}).end();
EOF
cp "$OBJ/node.js" "$OBJ/ws-box/node.js" 2>/dev/null
out=$($SSH box 'node /sandbox/node.js' 2>&1)
is "node trusts the sandbox CA (NODE_EXTRA_CA_CERTS)" "$out" "/node"

# ---- git with the github-readonly preset: clone yes, push no ----
t "git clone over smart HTTP through the preset" \
	$SSH gh 'git clone -q https://github.com/o/r.git /tmp/r && git -C /tmp/r log --oneline | wc -l'
out=$($SSH gh 'cd /tmp/r && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m x && git push -q origin HEAD 2>&1; echo rc=$?')
case "$out" in *"rc=0"*) t_fail "git push is denied by the preset"; diag "$out";;
	*403*|*"rc="*) t_ok "git push is denied by the preset";; esac
is "the upstream never saw a receive-pack" "$(git -C "$OBJ/git/o/r.git" log --oneline | wc -l)" 1

# ---- credentials ----
is "the sandbox sees the placeholder" "$($SSH box 'echo $TOKEN')" "moat:resolve:env:TOKEN"
out=$($SSH box 'curl -sS -m 10 -H "Authorization: Bearer $TOKEN" https://api.test/tok')
case "$out" in *"Bearer $SECRET"*) t_ok "the placeholder is replaced for its bound host";;
	*) t_fail "the placeholder is replaced for its bound host"; diag "$out";; esac
out=$($SSH box 'curl -sS -m 10 -H "Authorization: Bearer $TOKEN" https://other.test/tok')
case "$out" in *credential_endpoint_mismatch*) t_ok "and refused for another host";;
	*) t_fail "and refused for another host"; diag "$out";; esac
is "the secret is absent from the sandbox's environments and files" \
	"$($SSH box "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c '$SECRET'; grep -rl '$SECRET' /run /tmp /sandbox /etc 2>/dev/null | wc -l" | tr '\n' ' ')" "0 0 "

# ---- what the store, the log and the export hold ----
sleep 1.5 # the aggregator's batch
out=$("$MOAT" denials --json 2>&1)
case "$out" in *'"stage":"l7"'*'"method":"POST"'*'"path":"/repos/o/r"'*) t_ok "the L7 denial is stored with method and path";;
	*) t_fail "the L7 denial is stored with method and path"; diag "$out";; esac
case "$out" in *'"stage":"credential"'*TOKEN*) t_ok "the refused credential is stored with its name";;
	*) t_fail "the refused credential is stored with its name"; diag "$out";; esac
case "$out" in *'"stage":"audit"'*DELETE*) t_ok "the audit pass is recorded";;
	*) t_fail "the audit pass is recorded"; diag "$out";; esac
case "$out" in *'"sandbox":"gh"'*'"reason":"GET /o/r.git/info/refs matches a deny rule'*) t_ok "the push denial is recorded";;
	*) t_fail "the push denial is recorded"; diag "$out";; esac
out=$("$MOAT" proposals 2>&1)
case "$out" in *POST*'/repos/o/r'*|*allow_api_test_post_repos_o_r*) t_ok "the L7 proposal names the request";;
	*) t_fail "the L7 proposal names the request"; diag "$out";; esac
for f in "$MOAT_STORE" "$MOAT_STORE-wal" "$OBJ/moatd.log" "$OBJ/events.jsonl"; do
	[ -f "$f" ] || continue
	if grep -qa "$SECRET" "$f"; then t_fail "no secret in $(basename "$f")"; else t_ok "no secret in $(basename "$f")"; fi
done
done_testing
