"""A local HTTPS file server with its own CA, standing in for a release site or a mirror.

The CA and the server's certificate are made with the openssl command for each server,
so nothing the host trusts is involved: a client must be handed the CA file to connect.
"""

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SERVE = r'''
import http.server, ssl, sys
directory, cert, key, port_file = sys.argv[1:5]
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=directory, **kwargs)
    def log_message(self, format, *args):
        with open(directory + "/../requests.log", "a") as log:
            log.write(self.path + "\n")
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os; os.rename(port_file + ".tmp", port_file)
server.serve_forever()
'''


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class HttpsServer:
    """Serves the files under `root` (a directory it creates) at https://127.0.0.1:PORT/.

    Use it as a context manager; the server process is stopped by its PID on exit.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nodewarden-https-"))
        self.root = self.dir / "files"
        self.root.mkdir()
        self.ca_file = self.dir / "ca.pem"
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "HttpsServer":
        self._make_certificates()
        port_file = self.dir / "port"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.root), str(self.dir / "server.pem"),
             str(self.dir / "server.key"), str(port_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "server.log", "w"))
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the HTTPS test server did not start: "
                                   + (self.dir / "server.log").read_text())
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        return self

    def __exit__(self, *exc) -> None:
        if self._proc and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
            self._proc.wait(timeout=10)
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}"

    def publish(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def requests(self) -> list[str]:
        log = self.dir / "requests.log"
        return log.read_text().splitlines() if log.exists() else []

    def _make_certificates(self) -> None:
        d = self.dir
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=nodewarden test CA", cwd=d)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
                 cwd=d)


def stand_in(name: str) -> bytes:
    """A small script standing in for a released binary (kubelet, kubeadm) in tests."""
    return f"#!/bin/sh\necho '{name} stand-in for tests'\n".encode()


def serve_artifacts(state: str, server: HttpsServer, ca_path: str | None) -> str:
    """`state` with each artifact's url, sha256 and CA pointing at `server`, which serves a
    stand-in for each (named after the URL's last component). Returns the new state.

    With ca_path None the artifacts name no caFile: the nodes trust the server's CA
    system-wide (as cloud-init's ca_certs makes them)."""
    def swap(match: re.Match) -> str:
        indent, name = match.group(1), match.group(2)
        data = stand_in(name)
        server.publish(name, data)
        return (f"{indent}url: {server.url(name)}\n"
                f"{indent}sha256: {hashlib.sha256(data).hexdigest()}\n"
                + (f"{indent}caFile: {ca_path}\n" if ca_path else ""))
    return re.sub(r"( +)url: https://\S+/([^/\s]+)\n +sha256: [0-9a-f]{64}\n", swap, state)
