#!/bin/sh
# make run: start moatd in the foreground with the embedded dev config
# (one sandbox "dev", SSH on 127.0.0.1:2222, state under ./var), after
# making sure the invoking user has an SSH key to log in with.
set -eu
B=${1:-build/rel}
user=${SUDO_USER:-$(id -un)}
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || home=$HOME
key=""
for k in id_ed25519 id_ecdsa id_rsa; do
	if [ -f "$home/.ssh/$k.pub" ]; then key="$home/.ssh/$k"; break; fi
done
if [ -z "$key" ]; then
	key="$home/.ssh/id_ed25519"
	echo "run: no SSH key for $user; generating $key"
	mkdir -p "$home/.ssh" && chmod 700 "$home/.ssh"
	ssh-keygen -q -t ed25519 -N '' -C "$user@moat" -f "$key"
	if [ "$user" != "$(id -un)" ]; then
		chown "$user:" "$home/.ssh" "$key" "$key.pub"
	fi
fi
if [ "$(id -u)" != 0 ]; then
	echo "run: moatd needs root (namespaces, cgroups, nftables)." >&2
	echo "run: run 'sudo make run' instead." >&2
	exit 100
fi
echo "run: starting moatd (key $key.pub authorized for sandbox dev)"
echo "run: connect with:  ssh -p 2222 -i $key -o UserKnownHostsFile=$home/.ssh/known_hosts.moat dev@127.0.0.1"
MOAT_AUTHORIZED_KEYS="$key.pub" exec "$B/moatd"
