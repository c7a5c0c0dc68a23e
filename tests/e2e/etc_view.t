#!/bin/bash
# The sandbox's /etc against a changing host: a host `useradd` and
# `userdel` during a real ssh session (one running, one new after each)
# leave the sandbox user, its passwd/group/hosts and sftp as they were;
# a host file replaced by rename and a file added to a host directory
# are seen at once.
. "$(dirname "$0")/lib.sh"
need_root
command -v useradd >/dev/null && command -v userdel >/dev/null ||
	{ t_fail "useradd and userdel are installed"; done_testing; exit 1; }
SB="etc$$"     # not "box": other runs on this machine start sandboxes too
U="mtu$$"      # a throwaway host user
CONF="/etc/moat-e2e-$$.conf"
DIR="/etc/moat-e2e-$$.d"
on_cleanup "userdel $U; rm -rf $CONF $DIR"
echo one > "$CONF"
mkdir "$DIR" && echo a > "$DIR/a"
moatd_setup "$SB"
start_moatd "$CFG" || { t_fail "moatd starts"; done_testing; exit 1; }

# A running session: a shell reading commands from a fifo.
mkfifo "$OBJ/in"
$SSH -T "$SB" < "$OBJ/in" > "$OBJ/out" 2>&1 &
on_cleanup "kill $!"
exec 7> "$OBJ/in"
N=0
# running CMD: run CMD in the running session; its output in $RUN.
running() {
	N=$((N + 1))
	echo "echo BEGIN$N; $1; echo END$N" >&7
	for _ in $(seq 100); do grep -q "^END$N\$" "$OBJ/out" && break; sleep 0.1; done
	RUN=$(sed -n "/^BEGIN$N\$/,/^END$N\$/p" "$OBJ/out" | sed '1d;$d')
}
view='id -un; id -u; md5sum /etc/passwd /etc/group /etc/hosts | cut -c1-32 | tr "\n" " "; echo'
running "$view"; before=$RUN
is "running session: the sandbox user" "$(echo "$before" | head -1)" sandbox
is "a new session sees the same" "$($SSH "$SB" "$view")" "$before"

# sftp round trip, in a fresh session each time.
sftp_rt() {
	head -c 200k /dev/urandom > "$OBJ/f.$1"
	printf 'put %s f.%s\nget f.%s %s/f.%s.back\n' "$OBJ/f.$1" "$1" "$1" "$OBJ" "$1" > "$OBJ/sftp.$1"
	sftp -F "$OBJ/ssh_config" -q -b "$OBJ/sftp.$1" "$SB" >/dev/null 2>"$OBJ/sftp.$1.err" &&
		cmp -s "$OBJ/f.$1" "$OBJ/f.$1.back"
}

for step in add del; do
	ino=$(stat -c %i /etc/passwd)
	if [ $step = add ]; then useradd -M -s /usr/sbin/nologin "$U"; else userdel "$U"; fi
	[ "$(stat -c %i /etc/passwd)" != "$ino" ] && t_ok "host $step: /etc/passwd replaced by rename" ||
		t_fail "host $step: /etc/passwd replaced by rename"
	running "$view"
	is "after host $step: the running session sees the same user and files" \
		"$RUN" "$before"
	is "after host $step: a new session sees the same" "$($SSH "$SB" "$view")" "$before"
	is "after host $step: the sandbox's passwd does not list $U" \
		"$($SSH "$SB" "grep -c '^$U:' /etc/passwd")" 0
	is "after host $step: the host's /etc is at /run/host/etc, current" \
		"$($SSH "$SB" "grep -c '^$U:' /run/host/etc/passwd")" "$([ $step = add ] && echo 1 || echo 0)"
	t "after host $step: sftp round trip" sftp_rt $step
	[ -s "$OBJ/sftp.$step.err" ] && diag "$(head -3 "$OBJ/sftp.$step.err")"
done

# Host files are followed: a file replaced by rename, a file added to
# a directory, while the running session looks.
running "cat $CONF"
is "a host /etc file as the sandbox starts" "$RUN" one
echo two > "$CONF.new" && mv "$CONF.new" "$CONF"
echo b > "$DIR/b"
running "cat $CONF"
is "a host /etc file replaced by rename: the running session reads the new one" "$RUN" two
running "cat $DIR/b"
is "a file added to a host /etc directory is there" "$RUN" b
t_not "/etc is read-only inside" $SSH "$SB" "touch /etc/x"
t_not "so are the host's directories in it" $SSH "$SB" "touch $DIR/c"
exec 7>&-
cleanup
done_testing
