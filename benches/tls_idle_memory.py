"""Memory per idle TLS keep-alive connection: RSS of the server's processes
after 10,000 TLS connections (TLS 1.3, AES-128-GCM, an ECDSA P-256
certificate) have each made one request and stay open, minus RSS before,
divided by 10,000. uring-serve and nginx (one worker, benches/tls.py's
configuration), each on core 0, interleaved.

    cargo build --release && python3 benches/tls_idle_memory.py [REPEATS]
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from idle_memory import CONNECTIONS, ROOT, hold_idle, raise_nofile, wait_port
from tls import make_files, nginx_conf_tls

def start(kind, port, work, cert, key, www):
    if kind == "uring-serve":
        cmd = [os.path.join(ROOT, "target", "release", "uring-serve"), "--cores", "1",
               "--port", str(port), "--timeout-keep-alive", "300s", "--log-level", "warn",
               "--max-connections", "20000", "--ssl-certfile", cert, "--ssl-keyfile", key,
               "--ssl-min-version", "1.3", "--ssl-ciphers", "TLS13_AES_128_GCM_SHA256"]
    else:
        prefix = f"{work}/nginx-{port}"
        os.makedirs(f"{prefix}/tmp")
        with open(f"{prefix}/nginx.conf", "w") as f:
            f.write(nginx_conf_tls(prefix, port, cert, key, www))
        cmd = ["nginx", "-p", prefix, "-c", f"{prefix}/nginx.conf"]
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=raise_nofile)
    wait_port(port)
    time.sleep(0.5)
    return p


def measure(kind, port, files):
    server = start(kind, port, *files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def connect(address):
        return context.wrap_socket(socket.create_connection(address), server_hostname="localhost")

    try:
        return hold_idle(server, port, connect)
    finally:
        os.killpg(server.pid, 15)
        server.wait()


def main():
    raise_nofile()
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    work = tempfile.mkdtemp(prefix="uring-serve-tls-idle-")
    os.chmod(work, 0o755)
    port = 29300
    try:
        files = (work, *make_files(work))
        for rep in range(1, repeats + 1):
            for kind in ("uring-serve", "nginx"):
                port += 1
                before, after = measure(kind, port, files)
                per_conn = (after - before) * 1024 / CONNECTIONS
                print(f'{{"server":"{kind}","rep":{rep},"connections":{CONNECTIONS},'
                      f'"rss_before_kib":{before},"rss_after_kib":{after},'
                      f'"bytes_per_idle_connection":{per_conn:.0f}}}', flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
