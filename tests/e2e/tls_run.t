#!/bin/bash
# moat run's TLS options end to end: --upstream-ca trusts the test's own
# CA for the upstream, --secret NAME:HOST takes NAME's value from moat
# run's environment and the sandbox sees only the placeholder; the
# proxy puts the value in for the bound host and refuses it elsewhere.
# The upstream (tests/helpers/tls_upstream.py) runs in a netns this
# test creates; names resolve through --hosts only.
. "$(dirname "$0")/lib.sh"
need_root
upstream_start || { echo "1..0 # SKIP cannot create the upstream netns"; exit 0; }
SECRET="run-S3cret-$$-Q"

mkdir -p "$OBJ/tls"
( cd "$OBJ/tls" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout tca.key -out tca.pem -days 2 -subj /CN=moat-e2e-run-CA &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout up.key -out up.csr -subj /CN=api.test &&
  printf 'subjectAltName=DNS:api.test,DNS:other.test\n' > ext &&
  openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial \
	-days 2 -extfile ext -out up.pem ) >/dev/null 2>&1 || { t_fail "test CA"; done_testing; exit 1; }
ip netns exec "$UP_NS" /usr/bin/python3 "$TOP/tests/helpers/tls_upstream.py" \
	"$UP_ADDR" 443 "$OBJ/tls/up.pem" "$OBJ/tls/up.key" >"$OBJ/up.log" 2>&1 &
on_cleanup "kill $!"
for _ in $(seq 50); do
	ip netns exec "$UP_NS" bash -c "exec 3<>/dev/tcp/$UP_ADDR/443" 2>/dev/null && break
	sleep 0.1
done
echo "$UP_ADDR api.test other.test" > "$OBJ/hosts"
cat > "$OBJ/pol.json" <<EOP
{"version":1,"network_policies":{"api":{"endpoints":[
  {"host":"api.test","port":443,"protocol":"rest","access":"read-only"},
  {"host":"other.test","port":443}],
  "binaries":[{"path":"/usr/bin/curl"}]}}}
EOP
export MOAT_STORE="$OBJ/moat.db"
run() {
	TOK="$SECRET" timeout 60 "$MOAT" run -p "$OBJ/pol.json" --hosts "$OBJ/hosts" \
		--upstream-ca "$OBJ/tls/tca.pem" --secret TOK:api.test -- bash -c "$1" 2>&1
}
is "the sandbox sees the placeholder" "$(run 'echo $TOK')" "moat:resolve:env:TOK"
out=$(run 'curl -sS -m 10 -H "Authorization: Bearer $TOK" https://api.test/x')
case "$out" in *"Bearer $SECRET"*) t_ok "the value reaches the bound host (its CA trusted by --upstream-ca)";;
	*) t_fail "the value reaches the bound host (its CA trusted by --upstream-ca)"; diag "$out";; esac
out=$(run 'curl -sS -m 10 -H "X-Key: $TOK" https://other.test/y')
case "$out" in *credential_endpoint_mismatch*) t_ok "and is refused for another host";;
	*) t_fail "and is refused for another host"; diag "$out";; esac
out=$(run 'curl -sS -m 10 -X POST https://api.test/z')
case "$out" in *'"method":"POST"'*'"path":"/z"'*) t_ok "read-only: POST denied in a moat run";;
	*) t_fail "read-only: POST denied in a moat run"; diag "$out";; esac
is "the run's environment holds no value" "$(run "env | grep -c '$SECRET'; true")" 0
out=$(TOK= timeout 30 "$MOAT" run --secret TOK:api.test -- true 2>&1; echo "rc=$?")
case "$out" in *"environment variable TOK is not set"*rc=100) t_ok "a --secret without its variable is a usage error";;
	*) t_fail "a --secret without its variable is a usage error"; diag "$out";; esac
if grep -qa "$SECRET" "$MOAT_STORE" "$MOAT_STORE-wal" 2>/dev/null; then
	t_fail "the run's store holds no secret"
else
	t_ok "the run's store holds no secret"
fi
done_testing
