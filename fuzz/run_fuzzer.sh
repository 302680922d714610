#!/bin/sh
# Bounded fuzz run for CTest: run_fuzzer.sh FUZZER CORPUS_DIR SECONDS
# The checked-in corpus is copied to a scratch directory (new inputs are not
# written into the source tree); a crash leaves its reproducer in
# $VIFKIT_FUZZ_ARTIFACTS (default: the current directory) and fails the test.
set -eu
fuzzer=$1 corpus=$2 secs=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/vifkit-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -d "$corpus" ]; then cp -R "$corpus"/. "$work"/; fi
artifacts=${VIFKIT_FUZZ_ARTIFACTS:-$PWD}
mkdir -p "$artifacts"
exec_rc=0
"$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$(basename "$fuzzer")-" "$work" || exec_rc=$?
exit $exec_rc
