#!/bin/bash
# perf/ab.sh with short runs (1 s each) and many alternations: each round
# runs OLD then NEW once; at the end it prints, per bench and side, the
# median and the minimum of the rounds' criterion medians (ns). On a host
# whose speed flips between phases, the median over ten or more rounds,
# read beside a baseline's (cache_line_floor, rtrb_chunked), is steadier
# than any single pair. The rounds themselves are kept in /tmp/ab_fast.out.
#
# usage: perf/ab_medians.sh OLD_BINARY NEW_BINARY FILTER ROUNDS
# e.g.: perf/ab_medians.sh /tmp/oldtarget/release/deps/round_trip-<hash> \
#         target/release/deps/round_trip-<hash> 'round_trip/(shardpool$|cache_line_floor)' 10
set -eu
AB_ARGS="--measurement-time 1 --warm-up-time 0.3" "$(dirname "$0")/ab.sh" "$@" > /tmp/ab_fast.out
python3 - <<'PY'
import collections, statistics
d = collections.defaultdict(list)
for line in open('/tmp/ab_fast.out'):
    side, *pairs = line.split()
    for pair in pairs:
        name, value = pair.split('=')
        d[(name, side.rstrip(':'))].append(float(value))
for (name, side), vs in sorted(d.items()):
    print(f"{name:40s} {side}: median {statistics.median(vs):9.1f}  min {min(vs):9.1f}  n={len(vs)}")
PY
