#!/usr/bin/env bash
# Times builds against each other on one capture, alternating runs (so that the VM's slow and
# fast moments fall on all of them), each run writing its logs to new files (see compare.sh on
# ext4's auto_da_alloc). Prints each build's median wall and CPU time.
#
# usage: benches/ab.sh CAPTURE RUNS BINARY ...     (WORKERS=N to change --workers, default 1)
set -euo pipefail
cap=${1:?usage: ab.sh CAPTURE RUNS BINARY ...}
runs=${2:?usage: ab.sh CAPTURE RUNS BINARY ...}
shift 2
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in $(seq "$runs"); do
  n=0
  for b in "$@"; do
    n=$((n + 1))
    rm -f "$tmp/conn.jsonl" "$tmp/alerts.jsonl"
    /usr/bin/time -f "%e %U %S" -o "$tmp/t" "$b" read "$cap" -q --workers "${WORKERS:-1}" \
      --conn "$tmp/conn.jsonl" --alerts "$tmp/alerts.jsonl" 2>/dev/null || true
    cat "$tmp/t" >> "$tmp/times.$n"
  done
done
n=0
for b in "$@"; do
  n=$((n + 1))
  sort -n -k1,1 "$tmp/times.$n" | awk -v name="$b" '{w[NR] = $1; c[NR] = $2 + $3} END {
    m = int((NR + 1) / 2)
    printf "%-40s wall %.2f s (min %.2f, max %.2f)  cpu of that run %.2f s\n", name, w[m], w[1], w[NR], c[m]
  }'
done
