#!/usr/bin/env bash
# Checks that two builds write byte-identical connection records and alerts (both to one
# standard output, so their interleaving counts too) on each capture given, and on every
# fixture and every ../shared capture. Use it on a change meant to alter no output.
#
# usage: benches/same-output.sh OLD_BINARY NEW_BINARY [CAPTURE ...]
# e.g.   benches/same-output.sh /tmp/synwatch-before target/release/synwatch /tmp/bench.pcap
set -uo pipefail
old=${1:?usage: same-output.sh OLD NEW [CAPTURE ...]}
new=${2:?usage: same-output.sh OLD NEW [CAPTURE ...]}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
fail=0
for f in "$@" "$here"/fixtures/*.pcap* "$here"/../shared/captures/*.pcap*; do
  [ -e "$f" ] || continue
  a=$("$old" read "$f" -q --workers 1 --conn - --alerts - 2>/dev/null | md5sum)
  b=$("$new" read "$f" -q --workers 1 --conn - --alerts - 2>/dev/null | md5sum)
  if [ "$a" != "$b" ]; then
    echo "DIFFERENT: $f"
    fail=1
  fi
done
[ "$fail" = 0 ] && echo "same output on every capture"
exit "$fail"
