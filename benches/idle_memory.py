"""Memory per idle keep-alive connection: RSS of the server's processes
after 10,000 connections have each made one request and stay open, minus
RSS before, divided by 10,000. uring-serve and nginx (the peer kit's
configuration), each on core 0 with one worker, measured the same way,
interleaved.

    cargo build --release && python3 benches/idle_memory.py [REPEATS]
"""
import os
import re
import resource
import socket
import subprocess
import sys
import time

CONNECTIONS = 10_000
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KIT = os.path.join(ROOT, "..", "shared", "peers")
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, CONNECTIONS * 2 + 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def group_rss_kib(pgid):
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5: process group
                continue
            with open(f"/proc/{pid}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            continue
    return total


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start(kind, port):
    if kind == "uring-serve":
        cmd = [os.path.join(ROOT, "target", "release", "uring-serve"), "--cores", "1",
               "--port", str(port), "--timeout-keep-alive", "300s", "--log-level", "warn"]
    else:
        cmd = ["bash", os.path.join(KIT, "nginx", "serve.sh"), str(port), "1"]
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=raise_nofile)
    wait_port(port)
    time.sleep(0.5)
    return p


def hold_idle(server, port, connect=socket.create_connection):
    """RSS of `server`'s process group (KiB) before, and after CONNECTIONS
    connections made with `connect` have each been answered one request
    and stay open."""
    before = group_rss_kib(server.pid)
    conns = []
    for _ in range(CONNECTIONS):
        s = connect(("127.0.0.1", port))
        s.sendall(REQUEST)
        conns.append(s)
    for s in conns:
        data = b""
        while not data.endswith(b"Hello, World!"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed")
            data += chunk
    time.sleep(1)
    after = group_rss_kib(server.pid)
    for s in conns:
        s.close()
    return before, after


def measure(kind, port):
    server = start(kind, port)
    try:
        return hold_idle(server, port)
    finally:
        os.killpg(server.pid, 15)
        server.wait()


def main():
    raise_nofile()
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    port = 29100
    for rep in range(1, repeats + 1):
        for kind in ("uring-serve", "nginx"):
            port += 1
            before, after = measure(kind, port)
            per_conn = (after - before) * 1024 / CONNECTIONS
            print(f'{{"server":"{kind}","rep":{rep},"connections":{CONNECTIONS},'
                  f'"rss_before_kib":{before},"rss_after_kib":{after},'
                  f'"bytes_per_idle_connection":{per_conn:.0f}}}', flush=True)


if __name__ == "__main__":
    main()
