#!/usr/bin/env bash
# Records a capture of bulk transfers for the mixed-traffic benchmark (not committed: about
# 11 MB): curl downloads a 2 MiB file from python's http.server COUNT times (default 5), plus
# 20 small requests, between two network namespaces made here (veth, MTU 1500, offloads off so
# frames are wire-sized). Run as root. benches/make-capture.sh OUT COPIES BULK.pcap mixes it in.
#
# usage: benches/record-bulk.sh OUT.pcap [COUNT]
# Traffic stays inside the two namespaces (10.239.0.1 <-> 10.239.0.2); every step is bounded.
set -euo pipefail
out=${1:?usage: record-bulk.sh OUT.pcap [COUNT]}
count=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
REC_TAG=bulk
WORK=$(mktemp -d)
BG_PIDS=()
MADE_NS=()
CAP_PID=""
# shellcheck source=../fixtures/lib.sh
source "$here/fixtures/lib.sh"
[[ $EUID -eq 0 ]] || die "run as root (network namespaces)"
a=sw-bulk-a b=sw-bulk-b
for ns in $a $b; do
  ip netns list | grep -qw "$ns" && die "namespace $ns exists; remove it first"
done
ip netns add $a; MADE_NS+=($a)
ip netns add $b; MADE_NS+=($b)
ip link add bk-a netns $a type veth peer name bk-b netns $b
ip -n $a addr add 10.239.0.1/24 dev bk-a
ip -n $b addr add 10.239.0.2/24 dev bk-b
for ns in $a $b; do
  ip -n $ns link set lo up
  dev=$([ $ns = $a ] && echo bk-a || echo bk-b)
  ip -n $ns link set "$dev" up mtu 1500
  ip netns exec $ns ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true
done
head -c $((2 * 1024 * 1024)) /dev/urandom > "$WORK/big.bin"
echo small > "$WORK/small.txt"
spawn $b timeout 120 python3 -m http.server 8080 --bind 10.239.0.2 --directory "$WORK"
wait_listen $b t 8080
cap_start $a bk-a "$WORK/bulk.pcap" -s 2048 tcp port 8080
for i in $(seq "$count"); do
  ip netns exec $a timeout 30 curl -s -o /dev/null http://10.239.0.2:8080/big.bin
done
for i in $(seq 20); do
  ip netns exec $a timeout 10 curl -s -o /dev/null http://10.239.0.2:8080/small.txt
done
cap_stop
cp "$WORK/bulk.pcap" "$out"
capinfos -c -z "$out" | sed -n '2,3p'
