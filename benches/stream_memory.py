#!/usr/bin/env python3
"""Server memory while a large request body streams through `POST /echo`.

Starts the server on one core with `--max-body-bytes 2G`, sends SIZE bytes
(default 1 GiB) in 1 MiB writes while a second thread reads the echo,
samples the server's RSS every 50 ms, and prints one JSON line: bytes
echoed, seconds, RSS before and at its peak.

    cargo build --release && python3 benches/stream_memory.py [BINARY] [SIZE_MIB]
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "uring-serve")
    size = (int(sys.argv[2]) if len(sys.argv) > 2 else 1024) << 20
    port = free_port()
    server = subprocess.Popen(
        [binary, "--cores", "1", "--port", str(port), "--max-body-bytes", "2G"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        before = rss_kib(server.pid)
        peak = [before]
        received = [0]
        done = threading.Event()
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n"
                     "Connection: close\r\n\r\n".encode())

        def read():
            # The server closes after the response (`Connection: close`).
            buf = bytearray(1 << 20)
            while (n := conn.recv_into(buf)) > 0:
                received[0] += n

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(server.pid))
                time.sleep(0.05)

        reader = threading.Thread(target=read)
        sampler = threading.Thread(target=sample)
        reader.start()
        sampler.start()
        started = time.time()
        piece = b"x" * (1 << 20)
        for _ in range(size >> 20):
            conn.sendall(piece)
        reader.join(timeout=120)
        seconds = time.time() - started
        done.set()
        sampler.join()
        print(json.dumps({"body_bytes": size, "received_bytes": received[0], "seconds": round(seconds, 2),
                          "rss_before_kib": before, "rss_peak_kib": peak[0],
                          "rss_growth_kib": peak[0] - before}))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
