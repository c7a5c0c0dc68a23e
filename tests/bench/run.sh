#!/bin/sh
# make bench: moat against its peers, side by side in one run.
exec /usr/bin/python3 "$(dirname "$0")/run.py" "${1:-build/rel}"
