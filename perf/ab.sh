#!/bin/bash
# Alternates two builds of one criterion bench binary, the way the notes'
# "builds alternated" figures were taken on a host whose speed flips
# between phases: each round runs OLD then NEW, and prints each bench's
# median (ns) from criterion's estimates. Quote only pairs whose
# `cache_line_floor` (or other baseline) shows the same phase.
#
# usage: perf/ab.sh OLD_BINARY NEW_BINARY FILTER ROUNDS
# e.g., against commit X:
#   git worktree add /tmp/old X
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/oldtarget cargo bench --bench round_trip --no-run)
#   cargo bench --bench round_trip --no-run
#   perf/ab.sh /tmp/oldtarget/release/deps/round_trip-<hash> \
#       target/release/deps/round_trip-<hash> 'round_trip/(shardpool$|cache_line_floor)' 5
#
# Extra criterion arguments go in AB_ARGS (perf/ab_medians.sh passes short
# run times there).
set -eu
old=$1 new=$2 filter=$3 rounds=$4
read -r -a extra <<< "${AB_ARGS:-}"

for _ in $(seq 1 "$rounds"); do
  for side in old new; do
    if [ "$side" = old ]; then bin=$old; else bin=$new; fi
    rm -rf target/criterion
    "$bin" --bench "$filter" "${extra[@]}" >/dev/null 2>&1
    printf '%s:' "$side"
    find target/criterion -path '*/new/estimates.json' | sort | while read -r f; do
      name=${f#target/criterion/}; name=${name%/new/estimates.json}
      python3 -c "import json,sys; print(' %s=%.1f' % (sys.argv[1], json.load(open(sys.argv[2]))['median']['point_estimate']), end='')" "$name" "$f"
    done
    echo
  done
done
