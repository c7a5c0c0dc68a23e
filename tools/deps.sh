#!/bin/sh
# Install the Debian packages moat needs, only those missing.
# Usage: tools/deps.sh [build|test|bench]...   (default: build test)
# Services that packages would start on install (squid, tinyproxy, sshd,
# dropbear) are kept from starting: they would take ports moat and its
# tests use. The bench's squid is squid-openssl, Debian's squid built with
# OpenSSL (the GnuTLS one cannot ssl-bump); it replaces package squid.
set -eu
sets=${*:-build test}
want=""
for s in $sets; do
	case $s in
	build) want="$want gcc make pkg-config clang libclang-rt-14-dev llvm
	    libssh-dev libseccomp-dev libnftnl-dev libmnl-dev libssl-dev
	    libsqlite3-dev libjansson-dev libbpf-dev bpftool" ;;
	test) want="$want perl openssh-client openssh-sftp-server rsync tmux
	    curl python3 python3-paramiko python3-requests iproute2 nftables socat
	    sqlite3 procps psmisc" ;;
	bench) want="$want openssh-server dropbear-bin tinyproxy squid-openssl
	    bubblewrap hyperfine" ;;
	*) echo "deps: unknown set '$s' (build, test, bench)" >&2; exit 100 ;;
	esac
done
missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $st in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run 'sudo make deps' (or as root) to install them" >&2
	exit 111
fi
echo "deps: installing$missing"
prc=/usr/sbin/policy-rc.d
made_prc=0
if [ ! -e $prc ]; then
	printf '#!/bin/sh\nexit 101\n' > $prc && chmod 755 $prc && made_prc=1
fi
export DEBIAN_FRONTEND=noninteractive
rc=0
{ apt-get install -y -q --no-install-recommends $missing >/tmp/moat-deps.log 2>&1 ||
  { apt-get update -q >>/tmp/moat-deps.log 2>&1 &&
    apt-get install -y -q --no-install-recommends $missing >>/tmp/moat-deps.log 2>&1; }; } || rc=$?
[ $made_prc = 1 ] && rm -f $prc
if [ $rc != 0 ]; then
	echo "deps: apt-get failed (exit $rc); log in /tmp/moat-deps.log:" >&2
	tail -n 20 /tmp/moat-deps.log >&2
	exit 111
fi
