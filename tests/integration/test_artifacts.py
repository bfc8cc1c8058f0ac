"""Artifacts: files fetched over HTTPS from a local server with its own CA, checked
against their sha256, installed atomically; a wrong checksum never replaces a file."""

import hashlib

import pytest

from agent_helpers import apply, assert_no_op, state_yaml, unit_properties, write_state
from harness.https_server import HttpsServer
from harness.node import Node

TOOL = "/usr/local/bin/nw-tool"
CA = "/etc/nodewarden/mirror-ca.pem"
UNIT = "nw-tool.service"


def tool(version: str) -> bytes:
    return f"#!/bin/sh\n# nw-tool {version}\nexec sleep infinity\n".encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with HttpsServer() as https:
        yield https


def tool_state(server: HttpsServer, name: str, digest: str, **fields) -> str:
    return state_yaml(
        artifacts=[{"path": TOOL, "url": server.url(name), "sha256": digest, "mode": "0755",
                    "caFile": CA, **fields}],
        units=[{"name": UNIT, "content": f"[Service]\nExecStart={TOOL}\n", "state": "running",
                "restartOn": [TOOL]}])


def test_artifact_installed_cached_and_never_replaced_by_a_bad_download(
        agent_node: Node, server: HttpsServer) -> None:
    node = agent_node
    node.write_file(CA, server.ca_file.read_text())
    server.publish("v1/nw-tool", tool("1"))
    write_state(node, tool_state(server, "v1/nw-tool", sha256(tool("1"))))
    run = apply(node, expect=2)
    assert run.report["failed"] == 0, run.describe()
    assert node.read_file(TOOL) == tool("1")
    assert node.run(["stat", "-c", "%a", TOOL]).stdout.strip() == "755"
    assert node.systemctl("is-active", UNIT).stdout.strip() == "active"
    assert server.requests() == ["/v1/nw-tool"]

    # Nothing to do: not even a request to the server.
    assert_no_op(node)
    assert server.requests() == ["/v1/nw-tool"]

    # The state names a new digest but the server hands out something else: refused,
    # the installed binary stays, and its unit is not restarted.
    before = unit_properties(node, UNIT)
    server.publish("v2/nw-tool", b"#!/bin/sh\necho tampered\n")
    write_state(node, tool_state(server, "v2/nw-tool", sha256(tool("2"))))
    run = apply(node, expect=4)
    change = next(c for c in run.report["changes"] if c["resource"] == f"artifact {TOOL}")
    assert change["outcome"] == "failed"
    assert "sha256" in change["error"] and sha256(tool("2")) in change["error"], change
    assert node.read_file(TOOL) == tool("1")
    assert unit_properties(node, UNIT)["InvocationID"] == before["InvocationID"]

    # The right file: installed, and the unit that lists it restarts.
    server.publish("v2/nw-tool", tool("2"))
    run = apply(node, expect=2)
    assert run.report["failed"] == 0, run.describe()
    assert node.read_file(TOOL) == tool("2")
    assert (f"unit {UNIT}", "restart") in run.actions()
    assert unit_properties(node, UNIT)["InvocationID"] != before["InvocationID"]
    assert_no_op(node)


def test_server_outside_the_trusted_cas_is_refused(agent_node: Node,
                                                   server: HttpsServer) -> None:
    node = agent_node
    server.publish("nw-tool", tool("1"))
    # No caFile: the system's CAs don't know the test CA.
    write_state(node, state_yaml(artifacts=[{"path": TOOL, "url": server.url("nw-tool"),
                                             "sha256": sha256(tool("1"))}]))
    run = apply(node, expect=4)
    change = next(c for c in run.report["changes"] if c["resource"] == f"artifact {TOOL}")
    assert change["outcome"] == "failed"
    assert "certificate" in change["error"].lower(), change
    assert not node.exists(TOOL)
