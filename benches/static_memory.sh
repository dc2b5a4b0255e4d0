#!/usr/bin/env bash
# Memory of large static downloads: RSS of `uring-serve --static` (one
# core) before and while CLIENTS clients each download a SIZE_MIB MiB file
# at a limited rate, so that every download is in flight at once.
#
#   benches/static_memory.sh [CLIENTS] [SIZE_MIB] [RATE]
#
# Defaults: 100 clients, a 1024 MiB file, curl --limit-rate 20M. Prints the
# RSS before, during, and the difference per download. Needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-100}
SIZE_MIB=${2:-1024}
RATE=${3:-20M}
PORT=18083
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet
head -c $((SIZE_MIB << 20)) /dev/zero > "$WORK/big.bin"
cat "$WORK/big.bin" > /dev/null # into the page cache, as a hot file
taskset -c 0 target/release/uring-serve --cores 1 --port $PORT --static "$WORK" >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$PORT/big.bin" && break; sleep 0.1; done
rss() { awk '/^VmRSS/{print $2}' "/proc/$SERVER/status"; }
before=$(rss)
for _ in $(seq "$CLIENTS"); do
  curl -s -o /dev/null --limit-rate "$RATE" "http://127.0.0.1:$PORT/big.bin" &
done
sleep 5
open=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
during=$(rss)
echo "downloads in flight: $open"
echo "RSS before: $before KiB, during: $during KiB"
awk -v b="$before" -v d="$during" -v n="$open" 'BEGIN { printf "per download: %.1f KiB\n", (d - b) / n }'
