#!/bin/sh
# House rules that grep can check (style.md, DESIGN.md).
cd "$(dirname "$0")/../.." || exit 1
n=0
t() { n=$((n + 1)); if [ -z "$2" ]; then echo "ok $n - $1"; else
	echo "not ok $n - $1"; echo "$2" | sed 's/^/# /'; fi; }

t "proxy/ includes no process-side header" \
  "$(grep -rnE '#include *"(sshd|sessions|sandbox)/' proxy 2>/dev/null)"
t "process side includes no proxy/ header" \
  "$(grep -rnE '#include *"proxy/' sshd sessions sandbox 2>/dev/null)"
t "sqlite3.h only in store/" \
  "$(grep -rlE '#include *<sqlite3\.h>' --include='*.[ch]' . | grep -vE '^\./(store|tests|build)/')"
t "jansson only in policies/, common/ framing, moatd/ and cli/ I/O" \
  "$(grep -rlE '#include *<jansson\.h>' --include='*.[ch]' common sandbox sessions sshd store 2>/dev/null | grep -v '^common/\(event\|jsonl\)')"
# Every fd is born close-on-exec: no bare open(, socket(, pipe(, accept(,
# dup( outside tests. Lines that pass O_CLOEXEC/SOCK_CLOEXEC are fine.
bare=$(grep -rnE '(^|[^_a-z])(open|socket|pipe|accept|dup|epoll_create|socketpair)\(' \
	--include='*.c' common policies store render sandbox sessions sshd proxy moatd cli 2>/dev/null |
	grep -vE 'CLOEXEC|/\*|^\S+:\s*\*|moat_|cloexec-ok' )
t "no fd opened without close-on-exec" "$bare"
t "files stay under 1000 lines" \
  "$(find common policies store render sandbox sessions sshd proxy moatd cli -name '*.[ch]' -exec wc -l {} + 2>/dev/null | awk '$2 != "total" && $1 > 1000')"
# The CLI links no daemon code but the one-shot orchestrator `moat run`
# needs (moatd/oneshot.c, the proxy channel it forks, the credentials).
map="${MOAT_BUILD:-build/rel}/moat.map"
if [ -f "$map" ]; then
	pulled=$(grep -o 'libmoat_moatd\.a([^)]*)' "$map" | sort -u |
	    grep -vE '\((oneshot|proxychan|secrets)\.o\)$')
else
	pulled="no link map at $map (build first: make all)"
fi
t "moat links only oneshot.o, proxychan.o and secrets.o from moatd/" "$pulled"
echo "1..$n"
