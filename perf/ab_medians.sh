#!/bin/bash
# Like perf/ab.sh, with short runs (1 s each) and many alternations: each
# round runs OLD then NEW once; at the end it prints, per bench and side,
# the median and the minimum of the rounds' criterion medians (ns). On a
# host whose speed flips between phases, the median over ten or more
# rounds, read beside a baseline's (cache_line_floor, rtrb_chunked), is
# steadier than any single pair. Raw rounds are left in /tmp/ab_fast.out.
#
# usage: perf/ab_medians.sh OLD_BINARY NEW_BINARY FILTER ROUNDS
# e.g.: perf/ab_medians.sh /tmp/oldtarget/release/deps/round_trip-<hash> \
#         target/release/deps/round_trip-<hash> 'round_trip/(shardpool$|cache_line_floor)' 10
set -eu
old=$1 new=$2 filter=$3 rounds=$4
for _ in $(seq 1 "$rounds"); do
  for side in old new; do
    if [ "$side" = old ]; then bin=$old; else bin=$new; fi
    rm -rf target/criterion
    "$bin" --bench "$filter" --measurement-time 1 --warm-up-time 0.3 >/dev/null 2>&1
    find target/criterion -path '*/new/estimates.json' | sort | while read -r f; do
      name=${f#target/criterion/}; name=${name%/new/estimates.json}
      python3 -c "import json,sys; print('%s %s %.1f' % (sys.argv[3], sys.argv[1], json.load(open(sys.argv[2]))['median']['point_estimate']))" "$name" "$f" "$side"
    done
  done
done > /tmp/ab_fast.out
python3 - <<'PY'
import collections, statistics
d=collections.defaultdict(list)
for l in open('/tmp/ab_fast.out'):
    side,name,v=l.split(); d[(name,side)].append(float(v))
for (name,side),vs in sorted(d.items()):
    print(f"{name:40s} {side}: median {statistics.median(vs):9.1f}  min {min(vs):9.1f}  n={len(vs)}")
PY
