#!/usr/bin/env bash
# One-command load benchmark: builds the release binary (skip with
# --no-build), then runs benches/load.py with every argument given.
#
#   benches/load.sh [--no-build] [--scenarios plaintext,json] [--repeat 3] ...
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for arg in "$@"; do
  if [[ "$arg" == "--no-build" ]]; then
    build=0
  fi
done
if ((build)); then
  cargo build --release
fi
exec python3 benches/load.py "$@"
