#!/usr/bin/env bash
# Times whole runs on one capture: synwatch (full analysis with conn and alert logs, with one
# worker and with one per core; and without logs), the read
# floor (`tcpdump -r F -w /dev/null`), tcpdump with a SYN filter, tshark's TCP conversations,
# and argus when installed. Each tool runs RUNS times; the table shows the median wall time,
# packets per second, the ratio to the tcpdump floor, the peak RSS, and the median CPU time
# (user + system, over all threads; `/usr/bin/time`). On a shared VM CPU time moves less than
# wall time, and argus's wall time moves in whole seconds.
#
# usage: benches/compare.sh CAPTURE [RUNS]      (build first: cargo build --release)
# Make a capture with benches/make-capture.sh. Needs: tcpdump, capinfos; optional: tshark, argus.
set -euo pipefail
cap=${1:?usage: compare.sh CAPTURE [RUNS]}
runs=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
sw="$here/target/release/synwatch"
[ -x "$sw" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
pkts=$(capinfos -M -c "$cap" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME CMD...: prints "NAME median_seconds peak_kb median_cpu_seconds"
# Each run writes its logs to new files: the previous run's are removed first. Truncating an
# existing file instead makes ext4 (auto_da_alloc, the default) start writing its pages back
# when it is closed, inside the timed run: about 0.3 s for synwatch's 440 MB of logs on
# bench.pcap, which the first run did not pay.
run() {
  local name=$1; shift
  local times=() cpus=() rss=0
  for _ in $(seq "$runs"); do
    rm -f "$tmp/conn.jsonl" "$tmp/alerts.jsonl" "$tmp/argus.out"
    /usr/bin/time -f "%e %M %U %S" -o "$tmp/t" "$@" >/dev/null 2>"$tmp/err" || true
    read -r t m u s < "$tmp/t"
    times+=("$t")
    cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')")
    [ "$m" -gt "$rss" ] && rss=$m
  done
  local med cpu
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$name $med $rss $cpu"
}

{
  run "tcpdump-read" tcpdump -r "$cap" -w /dev/null
  run "tcpdump-syn" tcpdump -r "$cap" -w /dev/null 'tcp[tcpflags] & tcp-syn != 0'
  cores=$(nproc)
  run "synwatch-1-worker" "$sw" read "$cap" -q --workers 1 --conn "$tmp/conn.jsonl" --alerts "$tmp/alerts.jsonl"
  run "synwatch-${cores}-workers" "$sw" read "$cap" -q --workers "$cores" --conn "$tmp/conn.jsonl" --alerts "$tmp/alerts.jsonl"
  run "synwatch-no-logs" "$sw" read "$cap" -q --workers 1
  if command -v tshark >/dev/null; then run "tshark-conv-tcp" tshark -r "$cap" -q -z conv,tcp; fi
  if command -v argus >/dev/null; then run "argus" argus -r "$cap" -w "$tmp/argus.out"; fi
} > "$tmp/results"

floor=$(awk '$1 == "tcpdump-read" {print $2}' "$tmp/results")
echo "capture: $cap ($pkts packets), $runs runs each, median"
printf '%-18s %9s %12s %10s %12s %9s\n' tool seconds packets/s vs-floor peak-RSS cpu-s
awk -v p="$pkts" -v f="$floor" '{
  s = ($2 > 0) ? $2 : 0.001
  printf "%-18s %9.2f %12.0f %9.0f%% %9.1f MB %9.2f\n", $1, $2, p / s, 100 * f / s, $3 / 1024, $4
}' "$tmp/results"
