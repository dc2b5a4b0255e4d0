#!/usr/bin/env python3
"""Instructions the server executes per request, counted by callgrind.

Wall-clock figures on this VM swing with its fast and slow phases; an
instruction count does not. This runs the release binary (built with line
tables into target/instructions, so the profile names source lines) under
`valgrind --tool=callgrind` on one core, warms it up, then counts only
while a fixed number of requests is answered: CONNS connections, each
sending ROUNDS batches of DEPTH pipelined TechEmpower-style requests and
reading every response before the next batch.

    benches/instructions.py [--depth 16] [--rounds 200] [--conns 8] [--keep DIR]
                            [--axum | --command "CMD {port}"]

With --axum it counts the `axum` example's bare router (`/plaintext` through
`uring_serve::tower::TowerApp`, built with `--features tower`) instead of
the bench app: the adapter's cost is the difference. With --command it
counts any server (`{port}` in it is replaced), e.g. the same router on
`axum::serve` (bench-results/axum/reference/), without building anything.

Prints instructions per request, total and for the heaviest functions
(inclusive). With --keep the callgrind profile is left in DIR for
`callgrind_annotate`. Needs valgrind (apt-get install valgrind).
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_DIR = os.path.join(ROOT, "target", "instructions")
BINARY = os.path.join(TARGET_DIR, "release", "uring-serve")
AXUM_BINARY = os.path.join(TARGET_DIR, "release", "examples", "axum")


def request(port):
    return (
        b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,"
        b"application/xml;q=0.8,*/*;q=0.7\r\n"
        b"Connection: keep-alive\r\n\r\n" % port
    )


def drive(port, conns, rounds, depth):
    """Sends rounds x depth requests on each connection; returns the count."""
    batch = request(port) * depth
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    answered = 0
    for _ in range(rounds):
        for s in socks:
            s.sendall(batch)
        for s in socks:
            seen = b""
            while seen.count(b"Hello, World!") < depth:
                data = s.recv(65536)
                if not data:
                    sys.exit("the server closed a connection")
                seen += data
            answered += depth
    for s in socks:
        s.close()
    return answered


def wait_for(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the server did not start under valgrind")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(args, port):
    """The server to count, on `port` and one core."""
    if args.command:
        return args.command.replace("{port}", str(port)).split()
    binary = [AXUM_BINARY, "--bare"] if args.axum else [BINARY]
    return binary + ["--cores", "1", "--port", str(port)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--keep", help="directory to leave the callgrind profile in")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--axum", action="store_true",
                    help="count the axum example's bare router instead")
    ap.add_argument("--command", help="count this server instead ({port} is replaced)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is required (apt-get install valgrind)")

    if not args.no_build and not args.command:
        env = dict(os.environ, CARGO_PROFILE_RELEASE_DEBUG="line-tables-only")
        build = ["cargo", "build", "--release", "--target-dir", TARGET_DIR]
        if args.axum:
            build += ["--features", "tower", "--example", "axum"]
        subprocess.run(build, cwd=ROOT, env=env, check=True)
    out_dir = args.keep or tempfile.mkdtemp(prefix="uring-serve-callgrind-")
    os.makedirs(out_dir, exist_ok=True)
    profile = os.path.join(out_dir, "callgrind.out")
    port = free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no",
         f"--callgrind-out-file={profile}",
         *server_command(args, port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port, time.time() + 60)
        drive(port, args.conns, 20, args.depth)
        control = ["callgrind_control"]
        subprocess.run(control + ["-i", "on", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        answered = drive(port, args.conns, args.rounds, args.depth)
        subprocess.run(control + ["-i", "off", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(control + ["-d", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    finally:
        server.kill()
        server.wait()

    dumps = [f for f in os.listdir(out_dir) if f.startswith("callgrind.out")]
    dump = max((os.path.join(out_dir, f) for f in dumps), key=os.path.getsize)
    report = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", dump],
        capture_output=True, text=True, check=True,
    ).stdout
    print(f"{answered} requests, depth {args.depth}, {args.conns} connections")
    shown = 0
    for line in report.splitlines():
        fields = line.split()
        if not fields or not fields[0][0].isdigit():
            continue
        count = int(fields[0].replace(",", ""))
        name = line.split(")", 1)[-1].strip() if ")" in line else fields[-1]
        if "PROGRAM TOTALS" in line:
            print(f"{count / answered:8.0f}  instructions per request")
            continue
        if any(part in name for part in ("uring_serve::", "httparse::", "memcpy", "axum::", "http::")):
            print(f"{count / answered:8.0f}  {name[:150]}")
            shown += 1
            if shown == 20:
                break
    if args.keep:
        print(f"profile: {dump}")
    else:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
