#!/usr/bin/env python3
"""Memory per idle open WebSocket: RSS of the server's processes after
10,000 WebSockets completed their handshake and stay open, minus RSS
before, divided by 10,000. uring-serve (`/ws` of the bench app, one core)
and, when the peer kit's venv is there, uvicorn with benches/ws_echo_asgi.py
(uvloop, websockets), measured the same way, interleaved.

    cargo build --release && python3 benches/ws_idle_memory.py [REPEATS]
"""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time

from idle_memory import group_rss_kib, raise_nofile

CONNECTIONS = 10_000
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
UVICORN = os.path.join(ROOT, "..", "shared", "peers", "python", ".venv", "bin", "uvicorn")


def start(kind, port):
    if kind == "uring-serve":
        cmd = [os.path.join(ROOT, "target", "release", "uring-serve"), "--cores", "1", "--port", str(port),
               "--max-connections", str(CONNECTIONS + 100), "--ws-ping-interval", "0"]
        cwd = ROOT
    else:
        cmd = [UVICORN, "ws_echo_asgi:app", "--port", str(port), "--loop", "uvloop", "--ws", "websockets",
               "--log-level", "warning", "--no-access-log", "--ws-ping-interval", "0", "--backlog", "16384"]
        cwd = HERE
    server = subprocess.Popen(["taskset", "-c", "0"] + cmd, cwd=cwd, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return server
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{kind} did not start")


def handshake(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"no upgrade: {head[:60]!r}")
    return s


def measure(kind, port):
    server = start(kind, port)
    try:
        time.sleep(0.5)
        before = group_rss_kib(server.pid)
        path = "/ws" if kind == "uring-serve" else "/"
        sockets = [handshake(port, path) for _ in range(CONNECTIONS)]
        time.sleep(1)
        after = group_rss_kib(server.pid)
        for s in sockets:
            s.close()
        return before, after
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main():
    raise_nofile()
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    kinds = ["uring-serve"] + (["uvicorn"] if os.path.exists(UVICORN) else [])
    port = 29700
    for rep in range(1, repeats + 1):
        for kind in kinds:
            port += 1
            before, after = measure(kind, port)
            print(json.dumps({"server": kind, "rep": rep, "websockets": CONNECTIONS, "rss_before_kib": before,
                              "rss_after_kib": after,
                              "bytes_per_idle_websocket": round((after - before) * 1024 / CONNECTIONS)}),
                  flush=True)


if __name__ == "__main__":
    main()
