#!/bin/sh
FUZZ_BUILD=$1 FUZZ_SECONDS=$2 exec prove -f "$(dirname "$0")/fuzz.t"
