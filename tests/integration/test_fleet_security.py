"""What the control plane refuses, and that each refusal says why: a real
nodewarden-server on the host, and tests/tools/fleet-sim making the raw gRPC
calls an agent would not make (no node containers)."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from harness.server import Server

GROUP = "workers"
STATE = """apiVersion: nodewarden.io/v1
kind: NodeState
files:
  - path: /etc/fleet-marker
    content: "one\\n"
"""


@pytest.fixture
def fleet_sim(build_dir: Path) -> Path:
    binary = build_dir / "tests/tools/fleet-sim"
    if not binary.is_file():
        pytest.fail(f"{binary} does not exist: build first (ninja -C build)", pytrace=False)
    return binary


@pytest.fixture
def server(build_dir: Path):
    with Server(build_dir) as running:
        yield running


def enroll(fleet_sim: Path, server: Server, token: str, name: str, tmp_path: Path) -> Path:
    """Enrolls `name` the way the agent does; returns the directory holding
    node.key, node.crt and ca.crt."""
    directory = tmp_path / name
    result = subprocess.run([str(fleet_sim), "enroll", "--server", server.address,
                             "--token", token, "--ca-pin", server.ca_pin(), "--name", name,
                             "--dir", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return directory


def probe(fleet_sim: Path, server: Server, case: str, identity: Path | None = None, *,
          node: str | None = None, token: str | None = None) -> dict:
    """One call; its gRPC status code's name and message."""
    cmd = [str(fleet_sim), "probe", "--server", server.address,
           "--ca", str(server.dir / "state/ca.crt"), "--case", case]
    if identity is not None:
        cmd += ["--cert", str(identity / "node.crt"), "--key", str(identity / "node.key")]
    if node is not None:
        cmd += ["--node", node]
    if token is not None:
        cmd += ["--token", token]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def foreign_identity(directory: Path, common_name: str) -> Path:
    """A CA of our own and a client certificate it signed for `common_name`:
    the right name, the wrong issuer."""
    directory.mkdir()
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "node.key", directory / "node.csr", directory / "node.crt"
    extensions = directory / "client.ext"
    extensions.write_text("keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(ca_key))
    openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=nodewarden cluster CA",
            "-days", "1", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(ca_cert))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", f"/CN={common_name}", "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-set_serial", "4242", "-days", "1", "-extfile", str(extensions), "-out", str(cert))
    return directory


def set_state(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "workers.yaml"
    state.write_text(STATE)
    server.admin("state", "set", "--group", GROUP, str(state))


def test_connect_without_a_client_certificate_is_unauthenticated(server, fleet_sim):
    answer = probe(fleet_sim, server, "connect")

    assert answer["code"] == "UNAUTHENTICATED", answer
    assert "enroll" in answer["message"], answer


def test_certificate_from_another_ca_fails_the_tls_handshake(server, fleet_sim, tmp_path):
    token = server.create_token(GROUP)
    enroll(fleet_sim, server, token, "worker-1", tmp_path)
    impostor = foreign_identity(tmp_path / "impostor", "worker-1")

    answer = probe(fleet_sim, server, "connect", impostor)

    assert answer["code"] == "UNAVAILABLE", answer
    # Refused by TLS, before any service saw the call: the server's TLS layer
    # logs why, the node service (which logs every stream it refuses) saw
    # nothing, and the node never counted as connected.
    log = server.log.read_text()
    assert "certificate verify failed" in log, log
    assert "Refused a stream" not in log, log
    assert "worker-1 (workers) connected" not in log, log
    assert not server.nodes()["worker-1"].get("connected"), server.nodes()
    # The node's own certificate still gets through.
    assert probe(fleet_sim, server, "connect", tmp_path / "worker-1")["code"] == "OK"


def test_node_reads_only_its_own_desired_state(server, fleet_sim, tmp_path):
    set_state(server, tmp_path)
    token = server.create_token(GROUP)
    worker_1 = enroll(fleet_sim, server, token, "worker-1", tmp_path)
    enroll(fleet_sim, server, token, "worker-2", tmp_path)

    answer = probe(fleet_sim, server, "desired-state", worker_1, node="worker-2")

    assert answer["code"] == "PERMISSION_DENIED", answer
    assert "may read only its own" in answer["message"], answer
    assert probe(fleet_sim, server, "desired-state", worker_1, node="worker-1") == {
        "code": "OK", "message": f"desired state {GROUP}@1"}


def test_revoked_node_cannot_connect(server, fleet_sim, tmp_path):
    token = server.create_token(GROUP)
    identity = enroll(fleet_sim, server, token, "worker-1", tmp_path)
    assert probe(fleet_sim, server, "connect", identity)["code"] == "OK"

    server.admin("nodes", "revoke", "worker-1")
    answer = probe(fleet_sim, server, "connect", identity)

    assert answer["code"] == "PERMISSION_DENIED", answer
    assert "revoked" in answer["message"], answer


def test_used_up_token_enrolls_no_more_nodes(server, fleet_sim, tmp_path):
    token = server.create_token(GROUP, "--uses", "1")
    enroll(fleet_sim, server, token, "worker-1", tmp_path)

    answer = probe(fleet_sim, server, "enroll", node="worker-2", token=token)

    assert answer["code"] == "PERMISSION_DENIED", answer
    assert "used up" in answer["message"], answer
    assert "worker-2" not in server.nodes()


def test_expired_token_enrolls_no_node(server, fleet_sim):
    token = server.create_token(GROUP, "--ttl", "1s")
    time.sleep(1.5)  # the shortest TTL a token takes; nothing to wait on but the clock

    answer = probe(fleet_sim, server, "enroll", node="late-node", token=token)

    assert answer["code"] == "PERMISSION_DENIED", answer
    assert "expired" in answer["message"], answer
    assert "late-node" not in server.nodes()
