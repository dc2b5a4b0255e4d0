"""Zero-downtime restart check: a steady load of new connections (127.0.0.1
only, 4 s) while a second uring-serve joins the port with --join-reuseport
and the first gets SIGTERM. Prints answered / failed / non-2xx counts.

    cargo build --release && python3 benches/restart_swap.py 48
"""
import socket, subprocess, threading, time, sys, re
BIN = sys.argv[2] if len(sys.argv) > 2 else "target/release/uring-serve"
def start(port, extra):
    p = subprocess.Popen([BIN, "--cores", "all", "--port", str(port)] + extra, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"listening on http://[^ ]*:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, int(m.group(1))
a, port = start(0, [])
stats = {"ok": 0, "err": 0, "non2xx": 0}
lock = threading.Lock()
stop = time.time() + 4
def worker():
    while time.time() < stop:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(4096)
                if not d: break
                data += d
            s.close()
            with lock:
                if data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, World!"): stats["ok"] += 1
                else: stats["non2xx"] += 1
        except Exception as e:
            with lock: stats["err"] += 1
        pass
ts = [threading.Thread(target=worker) for _ in range(int(sys.argv[1]) if len(sys.argv)>1 else 8)]
[t.start() for t in ts]
time.sleep(1)
b, _ = start(port, ["--join-reuseport"])
time.sleep(0.5)
a.terminate(); a.wait()
[t.join() for t in ts]
b.terminate(); b.wait()
print(stats, "migrate_req=", open("/proc/sys/net/ipv4/tcp_migrate_req").read().strip(), "exit A", a.returncode)
