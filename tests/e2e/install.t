#!/bin/bash
# make install into a DESTDIR: programs, the systemd unit (live restore's
# KillMode=process, restart on failure, a high LimitNOFILE, the installed
# paths), the production config (live_restore on, valid, never
# overwritten), the state dir 0700. systemd-analyze checks the unit where
# it exists (this machine's PID 1 is not systemd).
. "$(dirname "$0")/lib.sh"
D="$OBJ/root"
t "make install DESTDIR=... works" make --no-print-directory -C "$TOP" \
	install DESTDIR="$D" B="$MOAT_BUILD"
is "moatd in sbin, 0755" "$(stat -c %a "$D/usr/local/sbin/moatd" 2>&1)" 755
is "moat in bin, 0755" "$(stat -c %a "$D/usr/local/bin/moat" 2>&1)" 755
t "the installed moatd runs" "$D/usr/local/sbin/moatd" --help
U="$D/etc/systemd/system/moatd.service"
is "the unit, 0644" "$(stat -c %a "$U" 2>&1)" 644
t "KillMode=process: a restart leaves the sandboxes alone" grep -qx 'KillMode=process' "$U"
t "restarted on failure" grep -qx 'Restart=on-failure' "$U"
t "a high LimitNOFILE" grep -qx 'LimitNOFILE=1048576' "$U"
t "ExecStart names the installed moatd and config" \
	grep -qx 'ExecStart=/usr/local/sbin/moatd -c /etc/moat/moatd.json' "$U"
t "state under /var/lib/moat" grep -qx 'StateDirectory=moat' "$U"
t_not "no placeholder left" grep -q '@' "$U"
C="$D/etc/moat/moatd.json"
is "the config, 0644" "$(stat -c %a "$C" 2>&1)" 644
is "it turns live restore on" \
	"$(/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["live_restore"], c["state_dir"])' "$C")" \
	"True /var/lib/moat"
t "moatd --check accepts it" "$D/usr/local/sbin/moatd" -c "$C" --check
is "the state dir, 0700" "$(stat -c %a "$D/var/lib/moat" 2>&1)" 700
t "presets installed" test -s "$D/usr/local/share/moat/presets/deny-all.json"
t "the operator guide installed" test -s "$D/usr/local/share/doc/moat/operator.md"
echo '{"edited":true}' > "$C"
t "a second install" make --no-print-directory -C "$TOP" install \
	DESTDIR="$D" B="$MOAT_BUILD"
is "keeps the operator's config" "$(cat "$C")" '{"edited":true}'
if command -v systemd-analyze >/dev/null 2>&1; then
	# The unit as installed, its paths pointed into DESTDIR.
	sed "s|/usr/local/sbin/moatd|$D/usr/local/sbin/moatd|g; s|/etc/moat/|$D/etc/moat/|g" \
		"$U" > "$OBJ/moatd.service"
	t "systemd-analyze verify accepts the unit" \
		systemd-analyze verify --man=no "$OBJ/moatd.service"
else
	diag "systemd-analyze is not installed: the unit's text is checked above"
fi
done_testing
