#!/usr/bin/env python3
"""Performance smoke gate: a tripwire for several-fold regressions, not a
benchmark.

Runs three short loads against the release binary and against a reference
that needs no code of this project, each pinned like the peer kit (server
on CPU 0, wrk on CPU 1), and fails when uring-serve falls far below it:

  one connection, sequential   p50 <= 1 ms, and >= 0.5x nginx's req/s
  64 keep-alive connections    >= 0.5x nginx's req/s
  16-deep pipelining           >= 250k req/s on one core (nginx does not
                               batch pipelined responses, so it is no
                               reference here; shown for information)

Each load runs REPEATS times, interleaved, and the best of each side is
compared, so one unlucky second does not fail the gate. The thresholds are
generous on purpose: a working build is several times above each on the
2-core machine CI runs on; a lost wake-up (a request waiting for a timer)
or a serialised core is far below. Proving speed is the job of
`bench-results/` (peer kit runs, medians of interleaved repeats).

Needs wrk and nginx (Debian packages; `.ci/run` installs them).

    cargo build --release && python3 benches/smoke.py [path/to/uring-serve]
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/uring-serve"
SERVER_CPU, LOAD_CPU = "0", "1"
SECONDS = 3
REPEATS = 2
MIN_RATIO = 0.5
MAX_P50_US = 1000.0
MIN_PIPELINED = 250_000

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;{http}
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port}{listen} backlog=4096;{server}
        location = /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }}
    }}
}}
"""


def nginx_conf(prefix, port, connections=4096, http="", listen="", server=""):
    """One worker answering /plaintext on `port`; `http` and `server` are
    lines added to those blocks, `listen` to the listen directive."""
    indent = lambda lines, depth: "".join(f"\n{' ' * depth}{line}" for line in lines.splitlines())
    return NGINX_CONF.format(prefix=prefix, port=port, connections=connections,
                             http=indent(http, 4), listen=listen, server=indent(server, 8))

PIPELINE_LUA = """
init = function(args)
  local depth = tonumber(args[1] or "1")
  local batch = {}
  for i = 1, depth do batch[i] = wrk.format(nil, "/plaintext") end
  req = table.concat(batch)
end
request = function() return req end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"smoke: {name} exited at start (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b"Hello, World!" in s.recv(4096):
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"smoke: {name} did not answer on port {port}")


def start_uring_serve(port):
    cmd = ["taskset", "-c", SERVER_CPU, BIN, "--cores", "all", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc, "uring-serve")
    return proc


def start_nginx(port, prefix):
    os.makedirs(f"{prefix}/tmp", exist_ok=True)
    conf = f"{prefix}/nginx.conf"
    with open(conf, "w") as f:
        f.write(nginx_conf(prefix, port))
    cmd = ["taskset", "-c", SERVER_CPU, "nginx", "-p", prefix, "-c", conf]
    if os.geteuid() == 0:
        cmd += ["-g", "user root;"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc, "nginx")
    return proc


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def to_us(value, unit):
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(port, connections, depth, script):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{SECONDS}s",
           "--latency", "-s", script, f"http://127.0.0.1:{port}/plaintext", "--", str(depth)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    if not rate or not p50:
        sys.exit(f"smoke: cannot read wrk's output:\n{out}")
    # A fast wrong answer is no answer: errors and non-2xx fail the gate.
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(rate.group(1)),
        "p50_us": to_us(*p50.groups()),
        "errors": (errors.group(1) if errors else "")
        + (f" non-2xx {non2xx.group(1)}" if non2xx else ""),
    }


LOADS = [
    ("one connection", 1, 1),
    ("64 keep-alive", 64, 1),
    ("pipelined x16", 64, 16),
]


def main():
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"smoke: {tool} is missing (apt-get install wrk nginx util-linux)")
    if not os.path.exists(BIN):
        sys.exit(f"smoke: {BIN} is missing (cargo build --release)")
    work = tempfile.mkdtemp(prefix="uring-serve-smoke-")
    script = f"{work}/pipeline.lua"
    with open(script, "w") as f:
        f.write(PIPELINE_LUA)
    ports = {"uring-serve": free_port(), "nginx": free_port()}
    servers = {
        "uring-serve": start_uring_serve(ports["uring-serve"]),
        "nginx": start_nginx(ports["nginx"], f"{work}/nginx"),
    }
    best = {}
    errors_seen = []
    try:
        for name, port in ports.items():
            wrk(port, 64, 1, script)  # warm-up, discarded
        for _ in range(REPEATS):
            for load, connections, depth in LOADS:
                for name, port in ports.items():
                    result = wrk(port, connections, depth, script)
                    print(f"  {load:15} {name:12} {result['rate']:>11.0f} req/s"
                          f"  p50 {result['p50_us']:>8.0f} us  {result['errors']}", flush=True)
                    if result["errors"].strip():
                        errors_seen.append(f"{load} on {name}: {result['errors'].strip()}")
                    # Best of the repeats: the highest rate, the lowest p50.
                    kept = best.setdefault((load, name), dict(result))
                    kept["rate"] = max(kept["rate"], result["rate"])
                    kept["p50_us"] = min(kept["p50_us"], result["p50_us"])
    finally:
        for proc in servers.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    failures = list(errors_seen)
    ours = lambda load: best[(load, "uring-serve")]
    theirs = lambda load: best[(load, "nginx")]
    for load in ("one connection", "64 keep-alive"):
        ratio = ours(load)["rate"] / theirs(load)["rate"]
        verdict = "ok" if ratio >= MIN_RATIO else "FAIL"
        print(f"{verdict:4} {load}: {ratio:.2f}x nginx (at least {MIN_RATIO}x)")
        if ratio < MIN_RATIO:
            failures.append(load)
    p50 = ours("one connection")["p50_us"]
    verdict = "ok" if p50 <= MAX_P50_US else "FAIL"
    print(f"{verdict:4} one connection: p50 {p50:.0f} us (at most {MAX_P50_US:.0f} us)")
    if p50 > MAX_P50_US:
        failures.append("one-connection p50")
    rate = ours("pipelined x16")["rate"]
    verdict = "ok" if rate >= MIN_PIPELINED else "FAIL"
    print(f"{verdict:4} pipelined x16: {rate:.0f} req/s (at least {MIN_PIPELINED}; "
          f"nginx {theirs('pipelined x16')['rate']:.0f})")
    if rate < MIN_PIPELINED:
        failures.append("pipelined")
    if failures:
        sys.exit(f"smoke: below the tripwire in: {', '.join(failures)}")
    print("smoke: every load above its tripwire")


if __name__ == "__main__":
    main()
