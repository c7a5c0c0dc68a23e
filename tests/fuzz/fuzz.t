#!/bin/sh
# Run every libFuzzer target for FUZZ_SECONDS on its seed corpus
# (tests/fuzz/corpus/NAME); a crash or leak fails the test.
cd "$(dirname "$0")/../.." || exit 1
fb=${FUZZ_BUILD:-build/fuzz}
secs=${FUZZ_SECONDS:-10}
n=0
for bin in "$fb"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	n=$((n + 1))
	work=$(mktemp -d)
	seeds=tests/fuzz/corpus/${name#fuzz_}
	[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
		echo "ok $n - $name ran ${secs}s clean ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$work.log" | awk '{print $2}') runs)"
	else
		echo "not ok $n - $name found a crash"
		# On stderr (prove shows it), and the input kept to replay.
		keep="$fb/crashes/$name"
		mkdir -p "$keep" && cp "$work"/crash-* "$work"/leak-* \
		    "$work"/timeout-* "$work"/oom-* "$keep"/ 2>/dev/null
		{ grep -E 'ERROR|SUMMARY|==[0-9]+==' "$work.log" | head -n 20
		  tail -n 15 "$work.log"
		  echo "input kept in $keep"; } | sed 's/^/# /' >&2
	fi
	rm -rf "$work" "$work.log"
done
[ $n -eq 0 ] && { echo "1..0 # SKIP no fuzz targets built"; exit 0; }
echo "1..$n"
