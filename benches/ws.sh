#!/usr/bin/env bash
# WebSocket echo beside uvicorn, one server core each (core 0), the load
# (benches/ws_echo.rs, 16 connections) on core 1: messages per second and
# the round trip's p50/p99, for 32 B and 64 KiB messages, REPEATS
# interleaved repeats. uvicorn comes from the peer kit's venv
# (../shared/peers/python/setup.sh: uvicorn[standard], uvloop, websockets).
#
#     benches/ws.sh [REPEATS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-4}
secs=${2:-5}
venv=../shared/peers/python/.venv
cargo build --release --quiet
cargo build --release --quiet --bench ws_echo
client=$(ls -t target/release/deps/ws_echo-* | grep -v '\.d$' | head -1)
port_us=29601
port_uv=29602
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
pids=()
trap cleanup EXIT
taskset -c 0 target/release/uring-serve --cores 1 --port "$port_us" >/dev/null 2>&1 &
pids+=($!)
(cd benches && taskset -c 0 "$OLDPWD/$venv/bin/uvicorn" ws_echo_asgi:app --port "$port_uv" \
  --loop uvloop --ws websockets --log-level warning --no-access-log --ws-max-size 16777216) &
pids+=($!)
sleep 2
for rep in $(seq 1 "$repeats"); do
  for size in 32 65536; do
    for target in "uring-serve ws://127.0.0.1:$port_us/ws" "uvicorn ws://127.0.0.1:$port_uv/"; do
      set -- $target
      line=$(taskset -c 1 "$client" --url "$2" --conns 16 --secs "$secs" --size "$size")
      echo "{\"server\":\"$1\",\"rep\":$rep,${line#\{}"
    done
  done
done
