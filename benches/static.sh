#!/usr/bin/env bash
# Static files beside nginx: uring-serve --static DIR and nginx serving the
# same directory, one core each, keep-alive wrk on 1 KiB, 64 KiB and 10 MiB
# files, interleaved repeats; medians of requests/s and bytes/s.
#
#   benches/static.sh [REPEATS] [SECONDS]
#   FILES="64k.bin" benches/static.sh 6 5   # some of the files only
#   RATE=5000 benches/static.sh 4 10          # fixed rate instead (below)
#
# Pinning: server on CPU 0; wrk on CPU 0 too ("same core", the steadiest
# setup on a VM) and on CPU 1 ("other core"). nginx runs one worker with
# sendfile on, open_file_cache off, access_log off. Needs wrk and nginx
# (apt-get install wrk nginx-light). Writes bench-results/static-<date>/.
#
# With RATE set, each file is asked for at that fixed rate instead, over 64
# connections, by the peer kit's ratebench (../shared/peers, wrk2's
# coordinated-omission model) on CPU 1: latency percentiles, and the
# server's CPU time per request (from /proc). Writes
# bench-results/static-rate-<date>/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
SECONDS_EACH=${2:-5}
FILES=${FILES:-1k.bin 64k.bin 10m.bin}
RATE=${RATE:-}
RATEBENCH=../shared/peers/rust/target/release/ratebench
if [ -n "$RATE" ]; then
  (cd ../shared/peers/rust && cargo build --release --quiet -p ratebench)
  OUT=bench-results/static-rate-$(date +%Y-%m-%d-%H%M)
else
  OUT=bench-results/static-$(date +%Y-%m-%d-%H%M)
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'pkill -f "nginx -c $WORK" 2>/dev/null || true; pkill -f "static $WORK/www" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet
mkdir -p "$WORK/www" "$WORK/nginx/tmp"
head -c 1024 /dev/urandom > "$WORK/www/1k.bin"
head -c 65536 /dev/urandom > "$WORK/www/64k.bin"
head -c 10485760 /dev/urandom > "$WORK/www/10m.bin"
cat > "$WORK/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server {
        listen 127.0.0.1:18081;
        root $WORK/www;
    }
}
CONF

start() { # NAME -> sets PID, PORT
  case $1 in
    nginx) PORT=18081; taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" >/dev/null 2>&1 & PID=$! ;;
    uring-serve) PORT=18082; taskset -c 0 target/release/uring-serve --cores 1 --port $PORT --static "$WORK/www" >/dev/null 2>&1 & PID=$! ;;
  esac
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/1k.bin" && return; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

if [ -n "$RATE" ]; then
  echo "repeat,server,file,achieved_rps,p50_us,p99_us,p999_us,max_us,non2xx,errors,cpu_us_per_request" > "$OUT/results.csv"
  tick_us=$((1000000 / $(getconf CLK_TCK)))
  for rep in $(seq "$REPEATS"); do
    for server in nginx uring-serve; do
      start $server
      for file in $FILES; do
        before=$(cpu_ticks)
        line=$(taskset -c 1 "$RATEBENCH" -c 64 -r "$RATE" -d "$SECONDS_EACH" "http://127.0.0.1:$PORT/$file" | grep '^@@rate')
        after=$(cpu_ticks)
        field() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
        completed=$(field completed)
        cpu=$(python3 -c "print(round(($after - $before) * $tick_us / max($completed, 1), 2))")
        echo "$rep,$server,$file,$(field achieved_rps),$(field p50_us),$(field p99_us),$(field p999_us),$(field max_us),$(field non2xx),$(field errors),$cpu" >> "$OUT/results.csv"
        echo "rep $rep $server $file: p50 $(field p50_us) us, p99 $(field p99_us) us, $cpu us CPU/request" >&2
      done
      stop
    done
  done
  echo "command: RATE=$RATE FILES=\"$FILES\" benches/static.sh $REPEATS $SECONDS_EACH" > "$OUT/env.txt"
  echo "commit: $(git rev-parse --short HEAD)" >> "$OUT/env.txt"
  python3 - "$OUT" <<'PY'
import csv, statistics as st, sys, collections
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
d = collections.defaultdict(list)
for r in rows:
    d[(r["file"], r["server"])].append(r)
lines = ["| file | server | achieved req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/request | non-2xx + errors |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
for f in dict.fromkeys(r["file"] for r in rows):
    for server in ["nginx", "uring-serve"]:
        rs = d[(f, server)]
        med = lambda k: st.median(float(r[k]) for r in rs)
        bad = sum(int(r["non2xx"]) + int(r["errors"]) for r in rs)
        lines.append(f"| {f} | {server} | {med('achieved_rps'):,.0f} | {med('p50_us'):.0f} | {med('p99_us'):.0f} "
                     f"| {med('p999_us'):.0f} | {med('cpu_us_per_request'):.2f} | {bad} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
  echo "results: $OUT" >&2
  exit 0
fi

echo "repeat,server,placement,file,requests_per_s,bytes_per_s" > "$OUT/results.csv"
for rep in $(seq "$REPEATS"); do
  for server in nginx uring-serve; do
    start $server
    for placement in same-core other-core; do
      cpu=0; [ $placement = other-core ] && cpu=1
      for file in $FILES; do
        out=$(taskset -c $cpu wrk -t1 -c32 -d${SECONDS_EACH}s "http://127.0.0.1:$PORT/$file" 2>&1)
        rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
        size=$(stat -c %s "$WORK/www/$file")
        echo "$rep,$server,$placement,$file,$rps,$(python3 -c "print(round($rps*$size))")" >> "$OUT/results.csv"
        echo "rep $rep $server $placement $file: $rps req/s" >&2
      done
    done
    stop
  done
done
{
  echo "command: FILES=\"$FILES\" benches/static.sh $REPEATS $SECONDS_EACH"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "machine: $(nproc) CPUs, $(uname -r), $(nginx -v 2>&1)"
} > "$OUT/env.txt"
python3 - "$OUT" <<'PY'
import csv, statistics as st, sys, collections
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
d = collections.defaultdict(list)
by_repeat = {}
for r in rows:
    d[(r["placement"], r["file"], r["server"])].append(float(r["requests_per_s"]))
    by_repeat[(r["repeat"], r["placement"], r["file"], r["server"])] = float(r["requests_per_s"])
files = list(dict.fromkeys(r["file"] for r in rows))
repeats = list(dict.fromkeys(r["repeat"] for r in rows))
lines = ["| placement | file | nginx req/s | uring-serve req/s | ratio of medians | median of per-repeat ratios |",
         "|---|---|---:|---:|---:|---:|"]
for placement in ["same-core", "other-core"]:
    for f in files:
        n = st.median(d[(placement, f, "nginx")]); u = st.median(d[(placement, f, "uring-serve")])
        pairs = st.median(by_repeat[(k, placement, f, "uring-serve")] / by_repeat[(k, placement, f, "nginx")]
                          for k in repeats)
        lines.append(f"| {placement} | {f} | {n:,.0f} | {u:,.0f} | {u/n:.2f} | {pairs:.2f} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results: $OUT" >&2
