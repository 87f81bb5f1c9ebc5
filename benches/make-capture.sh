#!/usr/bin/env bash
# Builds a benchmark capture from the recorded fixtures (not committed: large):
# every fixture except the broken ones, copied COPIES times with distinct address blocks
# (tcprewrite --pnat) and time offsets (editcap -t), merged in time order (mergecap).
# The result is real tool traffic (curl, nmap, hping3, ssh-like, DNS-like, VXLAN, IPv6, VLAN)
# multiplied into many distinct flows.
#
# usage: benches/make-capture.sh OUT.pcap [COPIES [EXTRA.pcap ...]]   (default 200 copies)
# EXTRA captures join the fixtures before multiplying: e.g. a bulk-transfer recording from
# benches/record-bulk.sh, for traffic of mixed packet sizes rather than mostly small ones.
# needs: tcprewrite (tcpreplay), editcap and mergecap (wireshark-common), capinfos
set -euo pipefail
out=${1:?usage: make-capture.sh OUT.pcap [COPIES]}
copies=${2:-200}
shift $(( $# >= 2 ? 2 : $# ))
extra=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Plain Ethernet pcap fixtures that read cleanly (cooked, truncated and snaplen-cut ones aside).
inputs=()
for f in "$here"/fixtures/*.pcap; do
  case "$(basename "$f")" in
    truncated-tail.pcap|snaplen-cut.pcap|cooked*.pcap) continue ;;
  esac
  inputs+=("$f")
done
mergecap -F pcap -w "$work/base.pcap" "${inputs[@]}" "${extra[@]}"
parts=()
for i in $(seq 0 $((copies - 1))); do
  a=$((i / 250 + 1)); b=$((i % 250 + 1))
  # Each copy gets its own 10.x.y.0/24-style blocks for every address it holds.
  tcprewrite --pnat="10.0.0.0/8:10.$a.$b.0/24,127.0.0.0/8:127.$a.$b.0/24,192.168.0.0/16:172.$((16 + a % 16)).$b.0/24" \
    --infile="$work/base.pcap" --outfile="$work/p$i.pcap" 2>/dev/null
  editcap -t "$((i * 7))" "$work/p$i.pcap" "$work/q$i.pcap"
  rm "$work/p$i.pcap"
  parts+=("$work/q$i.pcap")
done
mergecap -F pcap -w "$out" "${parts[@]}"
capinfos -c -d "$out" | sed -n '2,3p'
