#!/bin/bash
# Instructions per request, not time: a measure the machine's phases and
# neighbours do not move. Runs perf/examples/instructions.rs under callgrind
# (valgrind) at two sizes per workload and prints the difference per
# request, so that setup (building the pool, adding items) cancels out:
#
#   caller  the calling thread: the calls, less the spin for replies
#           (`Sleeper::wait_timed`), which callgrind, running one thread
#           at a time, stretches;
#   worker  the worker thread: its loop, less its idle spin
#           (`Looper::spin_timed`), for the same reason.
#
# The chunked rtrb pair runs both ends in turn on one thread: every
# instruction it executes is counted, with nothing to leave out.
#
# usage: perf/instructions.sh    (needs valgrind: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p perf --example instructions
bin=${CARGO_TARGET_DIR:-target}/release/examples/instructions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The inclusive instruction counts of the functions named, summed per role.
counts() {
  callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$1" 2>/dev/null | awk '
    function v(s) { gsub(",", "", s); return s + 0 }
    / \[.*instructions\]$/ {
      if ($0 ~ /:instructions::(caller_rt|caller_batch|pair_chunked) \[/) caller += v($1)
      if ($0 ~ /Sleeper::wait_timed \[/) caller -= v($1)
      if ($0 ~ /Worker<P>::run \[/) worker += v($1)
      if ($0 ~ /Looper<P>::spin_timed \[/) worker -= v($1)
    }
    END { printf "%d %d\n", caller, worker }'
}

run() { # mode n -> "caller worker"
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$bin" "$1" "$2" > /dev/null 2>&1
  counts "$out/$1.$2"
}

printf 'Instructions per request (callgrind, `perf/instructions.sh`), %s, commit %s.\n\n' \
  "$(date -u +%Y-%m-%d)" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '| workload | caller | worker | both |\n| --- | ---: | ---: | ---: |\n'
measure() { # mode label n1 n2 requests-per-op one-thread
  read -r c1 w1 < <(run "$1" "$3")
  read -r c2 w2 < <(run "$1" "$4")
  awk -v l="$2" -v c1="$c1" -v w1="$w1" -v c2="$c2" -v w2="$w2" -v d="$(( ($4 - $3) * $5 ))" -v one="$6" '
    BEGIN {
      c = (c2 - c1) / d; w = (w2 - w1) / d
      if (one) printf "| %s | — | — | %.0f |\n", l, c
      else printf "| %s | %.0f | %.0f | %.0f |\n", l, c, w, c + w
    }'
}
measure rt "shardpool, one round trip" 2000 12000 1 0
measure batch "shardpool, batch of 1024 (per request)" 2 12 1024 0
measure rtrb_chunked "chunked rtrb pair, batch of 1024 (per element; both ends on one thread)" 10 110 1024 1
