"""Load benchmark of uring-serve on one core, driven by wrk.

The release binary serves the built-in `bench` application with one core
(`taskset -c 0 uring-serve --cores 1`); wrk runs on CPU 1 (`taskset -c 1`),
one thread, 64 keep-alive connections. Scenarios:

    plaintext     GET /plaintext
    pipelined     GET /plaintext, 16 requests per write; wrk records one
                  latency sample per batch of 16 (its own percentiles are
                  broken by pipelining, so a wrk script reports them)
    json          GET /json
    echo          POST /echo with a 4096-byte body (checked once first)
    idle10k       GET /plaintext while 10,000 idle keep-alive connections
                  are open, on a freshly started server; also reports server
                  RSS before/after opening them, per idle connection
    blocking_mix  GET /plaintext, every 10th request GET /blocking?ms=1
                  (1 ms of thread::sleep on the blocking pool)

A 1 s warm-up run is discarded first; repeats are interleaved (repeat 1 of
every scenario, then repeat 2, ...). Everything lands in the output
directory: results.json, results.csv, load.svg, README.md (command and a
table of medians), the wrk scripts and the raw wrk output of every run.

    benches/load.sh                    # cargo build --release, then this
    python3 benches/load.py --binary target/release/uring-serve \
        --scenarios plaintext,json --repeat 3 --duration 5

Needs wrk and taskset (apt-get install wrk) and two CPUs. Python standard
library only.
"""
import argparse
import csv
import datetime
import http.client
import json
import math
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, LOAD_CPU = 0, 1
# The idle10k scenario keeps 10,000 connections open for longer than the
# default 5 s keep-alive timeout, next to wrk's, above the default
# 10,000-connection cap; the other scenarios are unaffected by either.
SERVER_FLAGS = ["--timeout-keep-alive", "300s", "--max-connections", "20000"]
IDLE_CONNECTIONS = 10_000
IDLE_REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"
HELLO = b"Hello, World!"
PIPELINE_DEPTH = 16
ECHO_PATTERN, ECHO_REPEAT = "0123456789abcdef", 256  # a 4096-byte body
STOP_GRACE_S = 5
WARMUP_S = 1
PERCENTILES = (50, 75, 90, 99)

PIPELINED_LUA = """\
-- {depth} pipelined GET /plaintext per write. wrk records one latency
-- sample per batch (batch written -> last response read).
--
-- wrk corrects its histogram for coordinated omission as if every sample
-- were one request: below each sample at n >= 2 * interval it adds copies
-- at n - interval, n - 2 * interval, ... (interval = runtime / (requests /
-- connections)). With {depth} requests per sample the interval is {depth}
-- times too short, most copies land below the histogram's minimum and
-- wrk's percentiles print as 0. done() takes the copies out again and
-- prints the measured percentiles on one line for load.py.

local ffi = require("ffi")
ffi.cdef("typedef struct { uint64_t count, limit, min, max; } load_wrk_stats;")

local CONNECTIONS = {connections}

function init(args)
  local batch = string.rep(wrk.format("GET", "/plaintext"), {depth})
  request = function()
    return batch
  end
end

-- wrk 4's stats struct is { count, limit, min, max, data[] }, one bucket
-- per microsecond; returns the buckets and the range in use.
local function histogram(latency)
  local stats = ffi.cast("load_wrk_stats **", latency)[0]
  local lo, hi = tonumber(stats.min), tonumber(stats.max)
  assert(lo == latency.min and hi == latency.max, "unexpected wrk stats layout")
  return ffi.cast("uint64_t *", stats) + 4, lo, hi
end

-- Measured samples per bucket (index v - lo + 1): the copies at v > interval
-- number the measured samples at v + interval, v + 2 * interval, ...
local function measured_counts(data, lo, hi, interval)
  local counts, above = {}, {}
  for v = hi, lo, -1 do
    local c = tonumber(data[v])
    if interval > 0 and v > interval then
      local r = v % interval
      c = math.max(0, c - (above[r] or 0))
      above[r] = (above[r] or 0) + c
    end
    counts[v - lo + 1] = c
  end
  return counts
end

local function percentiles(counts, lo, ps)
  local total = 0
  for i = 1, #counts do
    total = total + counts[i]
  end
  local out = {}
  for j, p in ipairs(ps) do
    out[j] = -1
    local rank, seen = math.max(1, math.ceil(p / 100 * total)), 0
    for i = 1, #counts do
      seen = seen + counts[i]
      if total > 0 and seen >= rank then
        out[j] = lo + i - 1
        break
      end
    end
  end
  return out, total
end

function done(summary, latency, requests)
  local data, lo, hi = histogram(latency)
  local per_connection = math.floor(summary.requests / CONNECTIONS)
  local interval = 0
  if per_connection > 0 then
    interval = math.floor(summary.duration / per_connection)
  end
  local p, samples = percentiles(measured_counts(data, lo, hi, interval), lo, {50, 75, 90, 99})
  io.write(string.format("@@batch-latency-us p50=%d p75=%d p90=%d p99=%d samples=%d\\n",
                         p[1], p[2], p[3], p[4], samples))
end
"""

ECHO_LUA = """\
-- POST /echo with a {size}-byte body.
wrk.method = "POST"
wrk.body = string.rep("{pattern}", {repeat})
wrk.headers["Content-Type"] = "application/octet-stream"
"""

BLOCKING_MIX_LUA = """\
-- 90 % GET /plaintext, 10 % GET /blocking?ms=1: every 10th request.
local plaintext, blocking
local sent = 0

function init(args)
  plaintext = wrk.format("GET", "/plaintext")
  blocking = wrk.format("GET", "/blocking?ms=1")
end

function request()
  sent = sent + 1
  if sent % 10 == 0 then
    return blocking
  end
  return plaintext
end
"""


@dataclass(frozen=True)
class Scenario:
    id: str
    path: str
    description: str
    script: str = ""  # wrk Lua script; "{connections}" is replaced by -c
    batch: int = 1  # requests per wrk latency sample
    idle: int = 0  # idle keep-alive connections held open during the run

    @property
    def latency_unit(self):
        return "request" if self.batch == 1 else f"batch of {self.batch}"


SCENARIOS = [
    Scenario("plaintext", "/plaintext", "keep-alive GET /plaintext"),
    Scenario("pipelined", "/plaintext",
             f"GET /plaintext, {PIPELINE_DEPTH} pipelined requests per write",
             PIPELINED_LUA.replace("{depth}", str(PIPELINE_DEPTH)), batch=PIPELINE_DEPTH),
    Scenario("json", "/json", "keep-alive GET /json"),
    Scenario("echo", "/echo", f"POST /echo with a {len(ECHO_PATTERN) * ECHO_REPEAT}-byte body",
             ECHO_LUA.format(size=len(ECHO_PATTERN) * ECHO_REPEAT, pattern=ECHO_PATTERN,
                             repeat=ECHO_REPEAT)),
    Scenario("idle10k", "/plaintext",
             f"GET /plaintext with {IDLE_CONNECTIONS:,} idle keep-alive connections open",
             idle=IDLE_CONNECTIONS),
    Scenario("blocking_mix", "/plaintext",
             "GET /plaintext, every 10th request GET /blocking?ms=1 (blocking pool)",
             BLOCKING_MIX_LUA),
]
BY_ID = {s.id: s for s in SCENARIOS}


class BenchError(Exception):
    """A problem worth one line to the user, not a traceback."""


# ---------------------------------------------------------------- setup

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "uring-serve"))
    p.add_argument("--scenarios", default=",".join(BY_ID),
                   help=f"comma-separated, from {','.join(BY_ID)} (default: all)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=int, default=5, help="seconds per run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--out", help="output directory (default bench-results/load-<date>-<time>)")
    p.add_argument("--no-build", action="store_true", help="used by load.sh; ignored here")
    args = p.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in BY_ID]
    if unknown:
        p.error(f"unknown scenario(s) {','.join(unknown)}; choose from {','.join(BY_ID)}")
    if args.repeat < 1 or args.duration < 1 or args.connections < 1:
        p.error("--repeat, --duration and --connections must be at least 1")
    return args


def check_environment(args):
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not found: apt-get install wrk util-linux")
    if not os.access(args.binary, os.X_OK):
        raise BenchError(f"no server binary at {args.binary}: run cargo build --release "
                         "or pass --binary")
    if not {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0):
        raise BenchError(f"needs CPUs {SERVER_CPU} and {LOAD_CPU} (server and wrk)")


def raise_nofile(need):
    """Raises the soft open-file limit (inherited by the server) to `need`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise BenchError(f"idle10k needs {need} open files, the hard limit is {hard} "
                         "(ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def command_output(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_model():
    with open("/proc/cpuinfo") as f:
        found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
    return found.group(1) if found else None


def machine_info():
    status = command_output(["git", "--no-optional-locks", "status", "--porcelain"])
    return {
        "uname": " ".join(os.uname()),
        "nproc": int(command_output(["nproc"]) or 0),
        "cpu_model": cpu_model(),
        "kernel": os.uname().release,
        "rustc": command_output(["rustc", "-V"]),
        "git_commit": command_output(["git", "rev-parse", "HEAD"]),
        "git_dirty": None if status is None else status != "",
    }


# ---------------------------------------------------------------- server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(binary, port):
    return ["taskset", "-c", str(SERVER_CPU), binary, "--cores", "1",
            "--port", str(port)] + SERVER_FLAGS


def get(port, path, timeout=2):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(proc, port, log_path):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}: see {log_path}")
        try:
            if get(port, "/plaintext", timeout=1) == (200, HELLO):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"server did not answer GET /plaintext within 10 s: see {log_path}")


@contextmanager
def running_server(binary, log_path):
    """Starts the server in its own process group (taskset execs the binary,
    so the group id is the child's pid); yields (port, command, group id)."""
    port = free_port()
    cmd = server_command(binary, port)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_ready(proc, port, log_path)
        yield port, cmd, proc.pid
    finally:
        stop(proc)


def stop(proc):
    """SIGTERM to the server's process group, SIGKILL after STOP_GRACE_S."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def group_rss_kib(pgid):
    """Sum of VmRSS over every process in process group `pgid`."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: process group
                continue
            with open(f"/proc/{pid}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            continue  # exited meanwhile, or a kernel thread without VmRSS
    return total


# ---------------------------------------------------------------- checks

def verify_echo(port):
    body = (ECHO_PATTERN * ECHO_REPEAT).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/echo", body, {"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        echoed = response.read()
    finally:
        conn.close()
    if response.status != 200 or echoed != body:
        raise BenchError(f"POST /echo answered {response.status} with {len(echoed)} bytes "
                         f"that differ from the {len(body)} sent")


def open_idle(port, count):
    """Opens `count` connections, each makes one request and stays open."""
    conns = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(IDLE_REQUEST)
            conns.append(s)
        for s in conns:
            read_hello(s)
    except BaseException:
        close_all(conns)
        raise
    return conns


def read_hello(s):
    data = b""
    while not data.endswith(HELLO):
        chunk = s.recv(4096)
        if not chunk:
            raise BenchError(f"idle connection closed after {len(data)} bytes")
        data += chunk


def count_closed(conns):
    """Connections the server has closed: EOF (or an error) readable at once."""
    closed = 0
    for s in conns:
        s.setblocking(False)
        try:
            closed += s.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            pass  # open and idle: nothing to read
        except OSError:
            closed += 1
    return closed


def close_all(conns):
    for s in conns:
        s.close()


# ---------------------------------------------------------------- wrk

def wrk_command(port, path, duration, connections, script_path=None):
    cmd = ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}",
           f"-d{duration}s", "--latency", "--timeout", "2s"]
    if script_path:
        cmd += ["-s", script_path]
    return cmd + [f"http://127.0.0.1:{port}{path}"]


def run_wrk(cmd, duration):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}: {done.stdout.strip()[-300:]}")
    return done.stdout


TIME_UNITS_US = {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def parse_wrk(text):
    """Throughput, latency distribution (us) and errors from wrk's output."""
    latency = {f"p{p}": float(value) * TIME_UNITS_US[unit] for p, value, unit in
               re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)}
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?)B", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                       r"timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": int(re.search(r"(\d+) requests in ", text).group(1)),
        "requests_per_sec": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "transfer_bytes_per_sec": float(transfer.group(1)) * SIZE_UNITS[transfer.group(2)],
        "wrk_latency_us": {f"p{p}": latency.get(f"p{p}") for p in PERCENTILES},
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"),
                                  map(int, errors.groups() if errors else (0, 0, 0, 0)))),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def parse_batch_latency(text):
    """Percentiles printed by the pipelined script's done(); None if missing."""
    found = re.search(r"^@@batch-latency-us (.*)$", text, re.M)
    if not found:
        return None
    values = dict(field.split("=") for field in found.group(1).split())
    return {f"p{p}": float(values[f"p{p}"]) if int(values[f"p{p}"]) >= 0 else None
            for p in PERCENTILES}


# ---------------------------------------------------------------- runs

def write_scripts(out, connections):
    """Writes each scenario's Lua script into out/scripts; returns paths."""
    os.makedirs(os.path.join(out, "scripts"), exist_ok=True)
    paths = {}
    for s in SCENARIOS:
        if s.script:
            paths[s.id] = os.path.join(out, "scripts", f"{s.id}.lua")
            with open(paths[s.id], "w") as f:
                f.write(s.script.replace("{connections}", str(connections)))
    return paths


def load_run(scenario, repeat, port, args, script, out):
    """One wrk run against `port`: progress lines, raw output, parsed result."""
    cmd = wrk_command(port, scenario.path, args.duration, args.connections, script)
    tag = f"[{scenario.id} {repeat}/{args.repeat}]"
    print(f"{tag} start: {shlex.join(cmd)}", flush=True)
    text = run_wrk(cmd, args.duration)
    raw_file = os.path.join("raw", f"{scenario.id}-{repeat}.txt")
    with open(os.path.join(out, raw_file), "w") as f:
        f.write(text)
    run = {"scenario": scenario.id, "repeat": repeat, "wrk_command": shlex.join(cmd),
           "raw_file": raw_file, **parse_wrk(text), "latency_unit": scenario.latency_unit}
    if scenario.batch > 1:
        run["latency_us"] = parse_batch_latency(text)
        run["latency_source"] = "wrk histogram with wrk's per-request correction undone"
    else:
        run["latency_us"] = run["wrk_latency_us"]
        run["latency_source"] = "wrk --latency"
    print(f"{tag} {result_line(run)}", flush=True)
    return run


def result_line(run):
    latency = run["latency_us"] or {}
    errors = sum(run["socket_errors"].values())
    return (f"{run['requests_per_sec']:,.0f} req/s  p50 {fmt_us(latency.get('p50'))}  "
            f"p99 {fmt_us(latency.get('p99'))}  non-2xx {run['non_2xx']}  errors {errors}")


def idle_run(scenario, repeat, args, out):
    """The scenario's load on a fresh server with `scenario.idle` idle
    connections open, so RSS before them is a fresh server's."""
    log = os.path.join(out, "logs", f"server-{scenario.id}-{repeat}.log")
    with running_server(args.binary, log) as (port, cmd, pgid):
        time.sleep(0.5)
        before = group_rss_kib(pgid)
        conns = open_idle(port, scenario.idle)
        try:
            time.sleep(1)
            after = group_rss_kib(pgid)
            run = load_run(scenario, repeat, port, args, None, out)
            run["idle_closed_during_run"] = count_closed(conns)
        finally:
            close_all(conns)
    run.update(server_command=shlex.join(cmd), idle_connections=scenario.idle,
               rss_before_kib=before, rss_after_kib=after,
               bytes_per_idle_connection=(after - before) * 1024 / scenario.idle)
    print(f"[{scenario.id} {repeat}/{args.repeat}] idle: server RSS {before:,} -> {after:,} KiB, "
          f"{run['bytes_per_idle_connection']:,.0f} bytes per connection, "
          f"{run['idle_closed_during_run']} of {scenario.idle:,} closed by the end", flush=True)
    return run


def warm_up(port, args):
    """A discarded wrk run; returns its command."""
    cmd = wrk_command(port, "/plaintext", WARMUP_S, args.connections)
    print(f"warm-up ({WARMUP_S} s, discarded): {shlex.join(cmd)}", flush=True)
    run_wrk(cmd, WARMUP_S)
    return shlex.join(cmd)


def run_all(args, out):
    """Every repeat of every scenario, interleaved: the server command, the
    warm-up command and the runs."""
    scripts = write_scripts(out, args.connections)
    runs = []
    with running_server(args.binary, os.path.join(out, "logs", "server.log")) as (port, cmd, _):
        if "echo" in args.scenarios:
            verify_echo(port)
        warm_up_command = warm_up(port, args)
        for repeat in range(1, args.repeat + 1):
            for scenario in map(BY_ID.get, args.scenarios):
                if scenario.idle:
                    runs.append(idle_run(scenario, repeat, args, out))
                else:
                    runs.append(load_run(scenario, repeat, port, args,
                                         scripts.get(scenario.id), out))
    return {"server_command": shlex.join(cmd), "warm_up_command": warm_up_command, "runs": runs}


# ---------------------------------------------------------------- summary

def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs, scenario_ids):
    summary = {}
    for sid in scenario_ids:
        mine = [r for r in runs if r["scenario"] == sid]
        latencies = [r["latency_us"] or {} for r in mine]
        entry = {
            "description": BY_ID[sid].description,
            "latency_unit": BY_ID[sid].latency_unit,
            "repeats_requests_per_sec": [r["requests_per_sec"] for r in mine],
            "median_requests_per_sec": median_of(r["requests_per_sec"] for r in mine),
            "median_p50_us": median_of(lat.get("p50") for lat in latencies),
            "median_p99_us": median_of(lat.get("p99") for lat in latencies),
            "non_2xx_total": sum(r["non_2xx"] for r in mine),
            "socket_errors_total": sum(sum(r["socket_errors"].values()) for r in mine),
        }
        if BY_ID[sid].idle:
            entry["median_bytes_per_idle_connection"] = median_of(
                r["bytes_per_idle_connection"] for r in mine)
        summary[sid] = entry
    return summary


def three_digits(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def fmt_us(us):
    if us is None:
        return "n/a"
    if us < 1000:
        return f"{us:.0f}us"
    if us < 1e6:
        return f"{three_digits(us / 1e3)}ms"
    return f"{three_digits(us / 1e6)}s"


def fmt_rate(v):
    if v >= 1e6:
        return f"{three_digits(v / 1e6)}M"
    if v >= 1e3:
        return f"{three_digits(v / 1e3)}k"
    return f"{v:.0f}"


def markdown_table(summary, repeats):
    lines = [f"| scenario | req/s (median of {repeats}) | p50 | p99 | non-2xx (all runs) "
             "| socket errors (all runs) |",
             "|---|---:|---:|---:|---:|---:|"]
    for sid, s in summary.items():
        unit = f" per {s['latency_unit']}" if s["latency_unit"] != "request" else ""
        lines.append(f"| {sid} | {s['median_requests_per_sec']:,.0f} "
                     f"| {fmt_us(s['median_p50_us'])}{unit} | {fmt_us(s['median_p99_us'])}{unit} "
                     f"| {s['non_2xx_total']} | {s['socket_errors_total']} |")
    return "\n".join(lines)


def idle_note(summary, runs):
    idle = [r for r in runs if "bytes_per_idle_connection" in r]
    if not idle:
        return ""
    per_conn = summary[idle[0]["scenario"]]["median_bytes_per_idle_connection"]
    rss = ", ".join(f"{r['rss_before_kib']:,} -> {r['rss_after_kib']:,} KiB" for r in idle)
    return (f"idle10k: {per_conn:,.0f} bytes of server RSS per idle keep-alive connection "
            f"(median; {IDLE_CONNECTIONS:,} connections; RSS per run: {rss}).")


# ---------------------------------------------------------------- files

def write_json(out, report):
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


CSV_FIELDS = ["scenario", "repeat", "requests", "requests_per_sec", "transfer_bytes_per_sec",
              "p50_us", "p75_us", "p90_us", "p99_us", "latency_unit", "non_2xx",
              "errors_connect", "errors_read", "errors_write", "errors_timeout",
              "rss_before_kib", "rss_after_kib", "bytes_per_idle_connection", "raw_file",
              "wrk_command"]


def write_csv(out, runs):
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for run in runs:
            latency = run["latency_us"] or {}
            writer.writerow({**run, **{f"{p}_us": v for p, v in latency.items()},
                             **{f"errors_{k}": v for k, v in run["socket_errors"].items()}})


def write_readme(out, report, table, note):
    machine = report["machine"]
    text = f"""# uring-serve load benchmark, {report['date'][:10]}

Commit `{machine['git_commit']}`{' (dirty tree)' if machine['git_dirty'] else ''};
{machine['cpu_model']}, {machine['nproc']} CPUs, Linux {machine['kernel']}.
Server on CPU {SERVER_CPU}: `{report['server_command']}`.
Load: wrk on CPU {LOAD_CPU}, one thread, {report['settings']['connections']} connections,
{report['settings']['duration_s']} s per run, repeats interleaved, medians below.

```
{report['command']}
```

{table}

{note + chr(10) if note else ""}Every wrk command is in `results.json`, its raw output in `raw/`.

![load](load.svg)
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


# ---------------------------------------------------------------- svg

SVG_W, SVG_H = 900, 420
PLOT_TOP, PLOT_BOTTOM = 92, 340
BAR_COLOR, P50_COLOR, P99_COLOR = "#4c78a8", "#9ecae9", "#2b6ca3"


def svg_text(x, y, text, size=11, anchor="start", color="#222", weight="normal"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{color}" font-weight="{weight}">{escape(str(text))}</text>')


def svg_rect(x, y, w, h, color):
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" '
            f'fill="{color}"/>')


def svg_vline(x, color="#ddd"):
    return (f'<line x1="{x:.1f}" y1="{PLOT_TOP}" x2="{x:.1f}" y2="{PLOT_BOTTOM}" '
            f'stroke="{color}" stroke-width="1"/>')


def row_centers(n):
    step = (PLOT_BOTTOM - PLOT_TOP) / n
    return step, [PLOT_TOP + step * (i + 0.5) for i in range(n)]


def row_labels(summary, right_edge, mark_batches):
    _, centers = row_centers(len(summary))
    parts = []
    for sid, y in zip(summary, centers):
        batch = mark_batches and summary[sid]["latency_unit"] != "request"
        parts.append(svg_text(right_edge, y + (0 if batch else 4), sid + ("*" if batch else ""),
                              anchor="end"))
        if batch:
            parts.append(svg_text(right_edge, y + 12, f"per {summary[sid]['latency_unit']}",
                                  size=9, anchor="end", color="#666"))
    return parts


def nice_step(span):
    magnitude = 10 ** int(f"{span:e}".split("e")[1])
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude * 5 >= span)


def requests_panel(summary, x0, x1):
    """Horizontal bars of the median req/s, one dot per repeat."""
    top = max(max(s["repeats_requests_per_sec"]) for s in summary.values()) or 1
    step = nice_step(top)
    limit = step * -(-top // step)
    scale = (x1 - x0) / limit
    parts = [svg_text(x0 - 92, PLOT_TOP - 14, "Requests/s (bar: median, dots: repeats)",
                      size=13, weight="bold")]
    for i in range(int(limit // step) + 1):
        x = x0 + i * step * scale
        parts += [svg_vline(x), svg_text(x, PLOT_BOTTOM + 14, fmt_rate(i * step), size=10,
                                         anchor="middle", color="#555")]
    row, centers = row_centers(len(summary))
    thickness = min(22, row * 0.55)
    for s, y in zip(summary.values(), centers):
        median = s["median_requests_per_sec"]
        parts.append(svg_rect(x0, y - thickness / 2, median * scale, thickness, BAR_COLOR))
        for rate in s["repeats_requests_per_sec"]:
            parts.append(f'<circle cx="{x0 + rate * scale:.1f}" cy="{y:.1f}" r="2.8" '
                         f'fill="#111" stroke="#fff" stroke-width="0.8"/>')
        right = x0 + max(s["repeats_requests_per_sec"]) * scale
        parts.append(svg_text(right + 6, y + 4, fmt_rate(median), size=10))
    parts += row_labels(summary, x0 - 6, mark_batches=False)
    return parts


def decade_label(exponent):
    """10 ** exponent microseconds as "10us", "1ms", "100ms", "1s"..."""
    for unit_exponent, unit in ((6, "s"), (3, "ms"), (0, "us")):
        if exponent >= unit_exponent or unit == "us":
            return f"{10 ** (exponent - unit_exponent)}{unit}"


def latency_panel(summary, x0, x1):
    """Paired horizontal bars of the median p50 and p99, log scale."""
    values = [v for s in summary.values() for v in (s["median_p50_us"], s["median_p99_us"])
              if v]
    low = math.floor(math.log10(min(values, default=100)))
    high = math.floor(math.log10(max(values, default=100))) + 1
    scale = (x1 - x0) / (high - low)

    def x_of(us):
        return x0 + (math.log10(us) - low) * scale

    parts = [svg_text(x0 - 92, PLOT_TOP - 14, "Latency, median (log scale)", size=13,
                      weight="bold"),
             svg_rect(x1 - 70, PLOT_TOP - 23, 10, 10, P50_COLOR),
             svg_text(x1 - 56, PLOT_TOP - 14, "p50", size=10),
             svg_rect(x1 - 30, PLOT_TOP - 23, 10, 10, P99_COLOR),
             svg_text(x1 - 16, PLOT_TOP - 14, "p99", size=10)]
    for decade in range(low, high + 1):
        for mantissa in (1, 2, 5):
            us = mantissa * 10 ** decade
            if decade == high and mantissa > 1:
                break
            parts.append(svg_vline(x_of(us), "#ddd" if mantissa == 1 else "#f0f0f0"))
            if mantissa == 1:
                parts.append(svg_text(x_of(us), PLOT_BOTTOM + 14, decade_label(decade),
                                      size=10, anchor="middle", color="#555"))
    row, centers = row_centers(len(summary))
    thickness = min(11, row * 0.3)
    for s, y in zip(summary.values(), centers):
        for offset, key, color in ((-thickness - 1, "median_p50_us", P50_COLOR),
                                   (1, "median_p99_us", P99_COLOR)):
            if s[key]:
                end = x_of(s[key])
                parts += [svg_rect(x0, y + offset, end - x0, thickness, color),
                          svg_text(end + 4, y + offset + thickness - 2, fmt_us(s[key]),
                                   size=9.5)]
    parts += row_labels(summary, x0 - 6, mark_batches=True)
    return parts


def write_svg(out, report, summary):
    machine = report["machine"]
    commit = (machine["git_commit"] or "unknown")[:10] + (" (dirty)" if machine["git_dirty"]
                                                         else "")
    settings = report["settings"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SVG_W} {SVG_H}" '
             f'width="{SVG_W}" height="{SVG_H}" font-family="sans-serif">',
             f'<rect width="{SVG_W}" height="{SVG_H}" fill="#fff"/>',
             svg_text(20, 26, f"uring-serve load benchmark, {report['date'][:10]}, "
                      f"commit {commit}", size=16, weight="bold"),
             svg_text(20, 45, f"server on CPU {SERVER_CPU} (--cores 1), wrk on CPU {LOAD_CPU}: "
                      f"-t1 -c{settings['connections']} -d{settings['duration_s']}s, "
                      f"{settings['repeat']} interleaved repeats; {machine['cpu_model']}",
                      size=11, color="#555")]
    parts += requests_panel(summary, 112, 380)
    parts += latency_panel(summary, 552, 835)
    footnotes = [f"* one latency sample per {s['latency_unit']} pipelined requests ({sid})."
                 for sid, s in summary.items() if s["latency_unit"] != "request"]
    for sid, s in summary.items():
        if "median_bytes_per_idle_connection" in s:
                footnotes.append(f"{sid}: load with {IDLE_CONNECTIONS:,} idle keep-alive "
                             f"connections open; {s['median_bytes_per_idle_connection']:,.0f} "
                             "bytes of server RSS per idle connection (median).")
    for i, line in enumerate(footnotes):
        parts.append(svg_text(20, SVG_H - 34 + 15 * i, line, size=10, color="#555"))
    parts.append("</svg>")
    with open(os.path.join(out, "load.svg"), "w") as f:
        f.write("\n".join(parts) + "\n")


# ---------------------------------------------------------------- main

def default_out():
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    return os.path.join(ROOT, "bench-results", f"load-{stamp}")


def main():
    args = parse_args()
    check_environment(args)
    if any(BY_ID[s].idle for s in args.scenarios):
        raise_nofile(IDLE_CONNECTIONS + 1024)
    out = os.path.abspath(args.out or default_out())
    for sub in ("raw", "logs"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "settings": {"scenarios": args.scenarios, "repeat": args.repeat,
                     "duration_s": args.duration, "connections": args.connections,
                     "wrk_threads": 1, "wrk_timeout_s": 2, "warm_up_s": WARMUP_S},
        "machine": machine_info(),
    }
    print(f"results go to {out}", flush=True)
    served = run_all(args, out)
    runs = served.pop("runs")
    summary = summarize(runs, args.scenarios)
    report.update(served, scenarios=summary, runs=runs)
    table, note = markdown_table(summary, args.repeat), idle_note(summary, runs)
    write_json(out, report)
    write_csv(out, runs)
    write_readme(out, report, table, note)
    write_svg(out, report, summary)
    print("\n" + "\n\n".join(filter(None, [table, note])), flush=True)
    print(f"\nwritten: {out}/{{results.json,results.csv,load.svg,README.md}}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"error: {e}")
