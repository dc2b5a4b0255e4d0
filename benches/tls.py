#!/usr/bin/env python3
"""HTTPS beside nginx: uring-serve and nginx (Debian's, one worker) with the
same certificate (ECDSA P-256) and TLS 1.3 with AES-128-GCM only, each
server pinned to core 0, interleaved repeats.

Scenarios (wrk speaks https; `tls_connect` is benches/tls_connect.rs):
  s                 keep-alive /plaintext, wrk -c64 on the server's core
  a                 keep-alive /plaintext, wrk -c64 on core 1
  static-64k        a 64 KiB file, wrk -c16 on core 1
  static-10m        a 10 MiB file, wrk -c4 on core 1
  handshake-full    new connections, one request each, full handshakes
                    (tls_connect, 16 threads on core 1)
  handshake-resumed the same, resuming from tickets

For each: the rate, and the server's CPU per request (or per connection)
from /proc (user + system, nginx's master and worker together).

    benches/tls.py [--repeat 4] [--secs 5] [--out DIR] [--scenarios s,a,...]
                   [--other NAME=BINARY]

With --other, a second uring-serve build runs beside them under NAME (a
build with another crypto provider, say), and its ratio to the first is
printed too.

Needs wrk, nginx and openssl (Debian packages).
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from smoke import free_port, nginx_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "uring-serve")
SERVER_CPU = "0"
LOAD_CPU = "1"
TICK = os.sysconf("SC_CLK_TCK")
SCENARIOS = ["s", "a", "static-64k", "static-10m", "handshake-full", "handshake-resumed"]

def nginx_conf_tls(prefix, port, cert, key, www):
    """smoke.py's nginx, over TLS 1.3 with AES-128-GCM, serving `www` too."""
    server = f"""ssl_certificate {cert};
ssl_certificate_key {key};
ssl_protocols TLSv1.3;
ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
ssl_session_tickets on;
root {www};"""
    return nginx_conf(prefix, port, connections=20000, http="sendfile on;", listen=" ssl",
                      server=server)


def wait_ready(port, proc, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"tls: {name} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"tls: {name} did not start")


def make_files(work):
    cert, key = f"{work}/cert.pem", f"{work}/key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    www = f"{work}/www"
    os.makedirs(www)
    for name, size in (("f64k.bin", 64 << 10), ("f10m.bin", 10 << 20)):
        with open(f"{www}/{name}", "wb") as f:
            f.write(os.urandom(size))
    return cert, key, www


def start_servers(work, cert, key, www, builds):
    """{name: (process, port)}; each uring-serve build (`builds`: name to
    binary) is two processes (the bench app, and `NAME-static` with
    --static for files), nginx one."""
    servers = {}
    tls = ["--ssl-certfile", cert, "--ssl-keyfile", key, "--ssl-min-version", "1.3",
           "--ssl-ciphers", "TLS13_AES_128_GCM_SHA256", "--max-connections", "20000"]
    for build, binary in builds.items():
        for name, extra in ((build, []), (f"{build}-static", ["--static", www])):
            port = free_port()
            proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, binary, "--cores", "1", "--port", str(port), *tls,
                 *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            wait_ready(port, proc, name)
            servers[name] = (proc, port)
    prefix = f"{work}/nginx"
    os.makedirs(f"{prefix}/tmp")
    port = free_port()
    with open(f"{prefix}/nginx.conf", "w") as f:
        f.write(nginx_conf_tls(prefix, port, cert, key, www))
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, "nginx", "-p", prefix, "-c", f"{prefix}/nginx.conf"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_ready(port, proc, "nginx")
    servers["nginx"] = (proc, port)
    return servers


def process_tree(pid):
    """`pid` and its children (nginx's workers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [pid] + [int(p) for p in out.split()]


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def run_wrk(url, conns, secs, cpu):
    out = subprocess.run(
        ["taskset", "-c", cpu, "wrk", "-t1", f"-c{conns}", f"-d{secs}s", url],
        capture_output=True, text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return rate, total, errors


def run_connect(client, port, secs, resume):
    cmd = ["taskset", "-c", LOAD_CPU, client, "--addr", f"127.0.0.1:{port}", "--conns", "16",
           "--secs", str(secs)]
    out = subprocess.run(cmd + (["--resume"] if resume else []), capture_output=True,
                         text=True).stdout
    rate = float(re.search(r'"conns_per_s":([\d.]+)', out).group(1))
    total = int(re.search(r'"connections":(\d+)', out).group(1))
    failed = int(re.search(r'"failed":(\d+)', out).group(1))
    resumed = int(re.search(r'"resumed":(\d+)', out).group(1))
    if resume and total and resumed < total * 0.9:
        print(f"  warning: only {resumed} of {total} connections resumed", file=sys.stderr)
    return rate, total, failed


def measure(scenario, server, servers, client, secs):
    name = f"{server}-static" if server != "nginx" and scenario.startswith("static") else server
    proc, port = servers[name]
    pids = process_tree(proc.pid)
    base = f"https://127.0.0.1:{port}"
    before = cpu_seconds(pids)
    if scenario == "s":
        rate, total, errors = run_wrk(f"{base}/plaintext", 64, secs, SERVER_CPU)
    elif scenario == "a":
        rate, total, errors = run_wrk(f"{base}/plaintext", 64, secs, LOAD_CPU)
    elif scenario == "static-64k":
        rate, total, errors = run_wrk(f"{base}/f64k.bin", 16, secs, LOAD_CPU)
    elif scenario == "static-10m":
        rate, total, errors = run_wrk(f"{base}/f10m.bin", 4, secs, LOAD_CPU)
    else:
        rate, total, errors = run_connect(client, port, secs, scenario == "handshake-resumed")
    cpu = cpu_seconds(pids) - before
    return {"rate": rate, "cpu_us": cpu * 1e6 / max(total, 1), "errors": errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--out", help="directory for results.tsv")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--other", help="NAME=BINARY: another uring-serve build beside them")
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "openssl", "taskset", "pgrep"):
        if shutil.which(tool) is None:
            sys.exit(f"tls: {tool} is missing (apt-get install wrk nginx openssl)")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bench", "tls_connect"],
                       cwd=ROOT, check=True)
    deps = os.path.join(ROOT, "target", "release", "deps")
    client = max((os.path.join(deps, f) for f in os.listdir(deps)
                  if f.startswith("tls_connect-") and not f.endswith(".d")),
                 key=os.path.getmtime)
    scenarios = args.scenarios.split(",")
    work = tempfile.mkdtemp(prefix="uring-serve-tls-bench-")
    os.chmod(work, 0o755)  # nginx's workers run as another user
    servers = {}
    rows = []
    try:
        cert, key, www = make_files(work)
        builds = {"uring-serve": BINARY}
        if args.other:
            other, binary = args.other.split("=", 1)
            builds[other] = binary
        servers = start_servers(work, cert, key, www, builds)
        names = [*builds, "nginx"]
        for name in names:  # warm-up
            measure("a", name, servers, client, 1)
        for rep in range(1, args.repeat + 1):
            for scenario in scenarios:
                for server in names:
                    r = measure(scenario, server, servers, client, args.secs)
                    rows.append((scenario, server, rep, r))
                    print(f"{scenario:18} {server:12} rep {rep}: {r['rate']:12.0f}/s "
                          f"{r['cpu_us']:8.2f} us CPU each, {r['errors']} errors", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    pairs = [("uring-serve", "nginx")] + [(b, "uring-serve") for b in builds if b != "uring-serve"]
    for ours_name, theirs_name in pairs:
        print(f"\n{ours_name} against {theirs_name}: rate each, ratio (median of per-repeat, "
              f"range), CPU us each")
        for scenario in scenarios:
            ours = [x for (sc, s, r, x) in rows if sc == scenario and s == ours_name]
            theirs = [x for (sc, s, r, x) in rows if sc == scenario and s == theirs_name]
            ratios = [a["rate"] / b["rate"] for a, b in zip(ours, theirs) if b["rate"]]
            med = lambda xs, k: statistics.median(x[k] for x in xs)
            print(f"{scenario:18} {med(ours, 'rate'):10.0f} {med(theirs, 'rate'):10.0f}   "
                  f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})   "
                  f"{med(ours, 'cpu_us'):.2f}, {med(theirs, 'cpu_us'):.2f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.tsv"), "w") as f:
            f.write("scenario\tserver\trep\trate\tcpu_us_each\terrors\n")
            for scenario, server, rep, r in rows:
                f.write(f"{scenario}\t{server}\t{rep}\t{r['rate']:.1f}\t{r['cpu_us']:.3f}\t"
                        f"{r['errors']}\n")


if __name__ == "__main__":
    main()
