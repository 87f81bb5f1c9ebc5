#!/usr/bin/env bash
# How time and peak memory grow with concurrent flows. For each N, writes a capture of N
# connections that are all open at once (benches/gen-flows.py; MODE syn or established), runs
# `synwatch read F -q`, and prints packets/s, peak RSS, RSS per flow above the fixed base
# (the peak RSS of a run on a 10-packet capture), and the growth per flow from the previous row
# (what each flow costs once the table's fixed parts are paid for: the first
# `--compact-after` connections, 65 536 by default, are kept whole at about 600 bytes each;
# those beyond are packed as they go quiet).
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
printf '%10s %10s %8s %12s %10s %12s %14s\n' flows packets seconds packets/s peak-RSS bytes/flow growth/flow
prev_n=0
prev_kb=
for n in "${sizes[@]}"; do
  python3 "$here/benches/gen-flows.py" "$n" "$tmp/f.pcap" "$mode" >/dev/null
  if [ "$mode" = syn ]; then pkts=$n; else pkts=$((n * 5)); fi
  for w in 1; do
    /usr/bin/time -f "%e %M" -o "$tmp/t" "$sw" read "$tmp/f.pcap" -q --workers "$w" --max-flows $((n + 1000))
    read -r secs kb < "$tmp/t"
    awk -v n="$n" -v p="$pkts" -v s="$secs" -v kb="$kb" -v b="$base" -v pn="$prev_n" -v pkb="$prev_kb" 'BEGIN {
      s = (s > 0) ? s : 0.01
      g = (pkb != "" && n > pn) ? sprintf("%14.0f", (kb - pkb) * 1024 / (n - pn)) : sprintf("%14s", "-")
      printf "%10d %10d %8.2f %12.0f %7.1f MB %12.0f %s\n", n, p, s, p / s, kb / 1024, (kb - b) * 1024 / n, g
    }'
    prev_n=$n
    prev_kb=$kb
  done
  rm -f "$tmp/f.pcap"
done
