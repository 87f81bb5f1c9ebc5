#!/usr/bin/env bash
# How time and peak memory grow with concurrent flows. For each N, writes a capture of N
# connections that are all open at once (benches/gen-flows.py; MODE syn or established), runs
# `synwatch read F -q`, and prints packets/s, peak RSS, and RSS per flow above the fixed base
# (the peak RSS of a run on a 10-packet capture).
#
# usage: benches/scaling.sh [MODE] [N ...]     (default: established 10000 100000 1000000)
# Build first: cargo build --release. Captures go to $TMPDIR and are removed.
set -euo pipefail
mode=${1:-established}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)
here=$(cd "$(dirname "$0")/.." && pwd)
sw="$here/target/release/synwatch"
[ -x "$sw" ] || { echo "build first: cargo build --release" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/time -f "%M" -o "$tmp/base" "$sw" read "$here/fixtures/http-curl.pcap" -q --workers 1
base=$(cat "$tmp/base")
echo "mode $mode; fixed base (peak RSS on a 10-packet capture): $((base / 1024)) MB"
printf '%10s %10s %8s %12s %10s %12s\n' flows packets seconds packets/s peak-RSS bytes/flow
for n in "${sizes[@]}"; do
  python3 "$here/benches/gen-flows.py" "$n" "$tmp/f.pcap" "$mode" >/dev/null
  if [ "$mode" = syn ]; then pkts=$n; else pkts=$((n * 5)); fi
  for w in 1; do
    /usr/bin/time -f "%e %M" -o "$tmp/t" "$sw" read "$tmp/f.pcap" -q --workers "$w" --max-flows $((n + 1000))
    read -r secs kb < "$tmp/t"
    awk -v n="$n" -v p="$pkts" -v s="$secs" -v kb="$kb" -v b="$base" 'BEGIN {
      s = (s > 0) ? s : 0.01
      printf "%10d %10d %8.2f %12.0f %7.1f MB %12.0f\n", n, p, s, p / s, kb / 1024, (kb - b) * 1024 / n
    }'
  done
  rm -f "$tmp/f.pcap"
done
