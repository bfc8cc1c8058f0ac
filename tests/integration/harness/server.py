"""A real nodewarden-server process on the host, for tests and the demo.

Node containers share the host's network, so agents reach it at 127.0.0.1.
Its state, CA and admin socket live in a temporary directory; stop() ends the
process by its PID.
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, build_dir: Path, *, config_extra: str = ""):
        self.binary = Path(build_dir) / "server/cmd/nodewarden-server"
        if not self.binary.is_file():
            raise FileNotFoundError(f"{self.binary} does not exist: build first")
        self._tmp = tempfile.TemporaryDirectory(prefix="nodewarden-server-")
        self.dir = Path(self._tmp.name)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.socket = self.dir / "run/admin.sock"
        self.config = self.dir / "server.yaml"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"adminSocket: {self.socket}\n"
            f"stateDirectory: {self.dir / 'state'}\n"
            "serverNames: [127.0.0.1, localhost]\n" + config_extra)
        self.log = self.dir / "server.log"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._tmp.cleanup()

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)  # one a killed server left behind
        log = open(self.log, "ab")
        self._proc = subprocess.Popen([str(self.binary), "run", "--config", str(self.config)],
                                      stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"nodewarden-server exited: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodewarden-server did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def admin(self, *args: str, check: bool = True, user: str | None = None,
              input_file: Path | None = None) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), *args, "--socket", str(self.socket)]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr}{result.stdout}")
        return result

    def admin_json(self, *args: str):
        return json.loads(self.admin(*args, "--json").stdout)

    def ca_pin(self) -> str:
        """The pin of the CA the server made, as `openssl` computes it."""
        ca = self.dir / "state/ca.crt"
        pubkey = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", str(ca)],
                                check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey,
                             check=True, capture_output=True).stdout
        import hashlib
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def create_token(self, group: str, *extra: str) -> str:
        return self.admin("token", "create", "--group", group, *extra).stdout.strip()

    def nodes(self) -> dict:
        return {n["name"]: n for n in self.admin_json("nodes", "list").get("nodes", [])}

    def wait_for(self, what: str, predicate, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:g} s; nodes: {self.nodes()}\n"
                                   f"server log:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.3)
