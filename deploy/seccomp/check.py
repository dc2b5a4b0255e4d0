#!/usr/bin/python3
"""Runs uring-serve under deploy/seccomp/uring-serve.json, as a container
runtime would load it, and exercises it: every request kind of the bench
app, the metrics listener, the access log, a Unix socket, static files
(small and large, in the page cache and not, a range, a listing), then
SIGTERM.
Exits 0 when everything answered and the server stopped cleanly.

    /usr/bin/python3 deploy/seccomp/check.py target/release/uring-serve

Needs libseccomp's Python binding (Debian: python3-seccomp)."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import seccomp

HERE = os.path.dirname(os.path.abspath(__file__))


def load_profile():
    profile = json.load(open(os.path.join(HERE, "uring-serve.json")))
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(profile["defaultErrnoRet"]))
    for rule in profile["syscalls"]:
        for name in rule["names"]:
            try:
                f.add_rule(seccomp.ALLOW, name)
            except (RuntimeError, ValueError):
                pass  # not a syscall on this architecture
    f.load()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, data=None):
    with urllib.request.urlopen(url, data=data, timeout=5) as r:
        return r.status, r.read()


def run(binary, args, requests):
    server = subprocess.Popen([binary, "--cores", "all"] + args, preexec_fn=load_profile,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            line = server.stderr.readline().decode()
            if "listening on" in line or not line:
                break
        if "listening on" not in line:
            sys.exit(f"the server did not start under the profile: {line or server.stderr.read().decode()}")
        requests()
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=40)
    if code != 0:
        sys.exit(f"exit code {code} after SIGTERM: {server.stderr.read().decode()}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/uring-serve"
    port, metrics = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "access.log")

        def tcp_requests():
            base = f"http://127.0.0.1:{port}"
            assert get(base + "/plaintext") == (200, b"Hello, World!")
            assert get(base + "/json")[0] == 200
            assert get(base + "/echo", data=b"x" * 5000) == (200, b"x" * 5000)
            assert get(base + "/sleep?ms=5")[0] == 200
            assert get(base + "/blocking?ms=5")[0] == 200
            assert get(base + "/healthz") == (200, b"ok\n")
            status, body = get(f"http://127.0.0.1:{metrics}/metrics")
            assert status == 200 and b"uring_serve_requests_total" in body

        run(binary, ["--port", str(port), "--metrics", f"127.0.0.1:{metrics}", "--access-log", log,
                     "--health-path", "/healthz"], tcp_requests)
        assert len(open(log).read().splitlines()) == 6, "one access-log line per request"

        path = os.path.join(tmp, "http.sock")

        def unix_requests():
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"Hello, World!"), answer

        run(binary, ["--uds", path], unix_requests)

        www = os.path.join(tmp, "www")
        os.makedirs(os.path.join(www, "sub"))
        small, large = os.urandom(1000), os.urandom(3 << 20)
        for name, data in (("small.bin", small), ("large.bin", large)):
            with open(os.path.join(www, name), "wb") as f:
                f.write(data)

        def evict(name):
            fd = os.open(os.path.join(www, name), os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)

        def static_requests():
            base = f"http://127.0.0.1:{port}"
            for cached in (False, True):
                if not cached:
                    evict("small.bin")
                    evict("large.bin")
                assert get(base + "/small.bin") == (200, small), cached
                assert get(base + "/large.bin") == (200, large), cached
            ranged = urllib.request.Request(base + "/large.bin", headers={"Range": "bytes=100-199"})
            assert get(ranged) == (206, large[100:200])
            status, page = get(base + "/")
            assert status == 200 and b'href="sub/"' in page and b'href="large.bin"' in page, page

        run(binary, ["--port", str(port), "--static", www, "--static-listing"], static_requests)
    print("ok: uring-serve ran under deploy/seccomp/uring-serve.json")


if __name__ == "__main__":
    main()
