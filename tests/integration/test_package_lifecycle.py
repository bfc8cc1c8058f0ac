"""The Debian packages' whole life on a node with a real systemd: install, upgrade to a
newer build, remove, purge; for the agent and for the server.

An operator relies on each step doing what Debian's packaging promises and no more:
the service is enabled and started on install and restarted on upgrade with its
configuration and state kept, and the node it manages is left alone throughout (an
agent upgrade restarts no component of the node); remove stops the service and keeps
configuration and state, purge takes both away.
"""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import debian_packages as debs
from debian_packages import AGENT, SERVER, PackagedServer
from harness.node import Node
from harness.server import Server, free_port
from test_fleet import applied, group_state

AGENT_UNIT = "nodewarden-agent.service"
SERVER_UNIT = "nodewarden-server.service"
MANAGED_UNIT = "fleet-demo.service"
AGENT_STATE = ("/var/lib/nodewarden", "/var/cache/nodewarden")
SERVER_STATE = ("/var/lib/nodewarden-server", "/var/lib/private/nodewarden-server")


@pytest.fixture
def node(rootfs: Path) -> Iterator[Node]:
    """A fresh node sharing the host's apt cache: agents here install packages."""
    with Node(rootfs, shared_apt_cache=True) as booted:
        yield booted


@pytest.fixture(scope="module")
def versions() -> tuple[str, str]:
    """The packaged version and the newer build an upgrade installs."""
    current = debs.current_version()
    newer = debs.next_version(current)
    debs.ensure_built(current, newer)
    return current, newer


def service(node: Node, unit: str) -> dict[str, str]:
    shown = node.systemctl("show", "--property=ActiveState,UnitFileState,InvocationID,MainPID",
                           unit).stdout
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def assert_running(node: Node, unit: str) -> dict[str, str]:
    """The unit is enabled and active (waiting out activating: the agent is Type=notify)."""
    deadline = time.monotonic() + 60
    while (now := service(node, unit))["ActiveState"] == "activating" and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert (now["UnitFileState"], now["ActiveState"]) == ("enabled", "active"), now
    return now


def assert_stopped_and_gone(node: Node, unit: str, binary: str) -> None:
    assert node.systemctl("is-active", unit, check=False).stdout.strip() == "inactive"
    assert not node.exists(binary)
    assert node.run(["pgrep", "-x", Path(binary).name], check=False).returncode == 1


def test_agent_package_install_upgrade_remove_purge(node: Node, build_dir, versions, tmp_path):
    current, newer = versions
    with Server(build_dir) as server:
        state = tmp_path / "workers.yaml"
        state.write_text(group_state("from-the-package"))
        server.admin("state", "set", "--group", "workers", str(state))
        token = server.create_token("workers", "--uses", "1")

        # Install: enabled and started as shipped, enforcing the empty local node.yaml.
        debs.install(node, debs.deb(AGENT, current))
        assert debs.status(node, AGENT) == f"install ok installed {current}"
        assert_running(node, AGENT_UNIT)
        conffiles = node.run(["dpkg-query", "-W", "--showformat=${Conffiles}", AGENT]).stdout
        assert "/etc/nodewarden/agent.yaml" in conffiles
        assert "/etc/nodewarden/node.yaml" in conffiles
        assert node.exists("/usr/share/man/man8/nodewarden-agent.8.gz")

        # The operator points it at the control plane: it enrolls and converges.
        config = (f"server: {server.address}\nbootstrapToken: {token}\n"
                  f"caCertHash: {server.ca_pin()}\nnodeName: packaged-1\nusageInterval: 5s\n")
        node.write_file("/etc/nodewarden/agent.yaml", config, mode=0o600)
        node.systemctl("restart", AGENT_UNIT)
        server.wait_for("packaged-1 applied workers@1",
                        lambda: applied(server, "packaged-1", "workers@1"))
        assert node.read_file("/etc/fleet-marker") == b"from-the-package\n"
        enrolled = server.admin_json("nodes", "show", "packaged-1")
        agent_before = assert_running(node, AGENT_UNIT)
        managed_before = service(node, MANAGED_UNIT)
        assert managed_before["ActiveState"] == "active"
        marker_before = node.run(["stat", "-c", "%Y.%y", "/etc/fleet-marker"]).stdout
        certificate = node.read_file("/var/lib/nodewarden/pki/node.crt")

        # Upgrade to a newer build: the agent restarts on the new package, with the same
        # configuration and identity (no new enrollment: the token is used up), and it
        # converges again without restarting or rewriting anything of the node.
        upgraded_at_us = time.time() * 1e6
        debs.install(node, debs.deb(AGENT, newer))
        assert debs.status(node, AGENT) == f"install ok installed {newer}"
        agent_after = assert_running(node, AGENT_UNIT)
        assert agent_after["InvocationID"] != agent_before["InvocationID"], "not restarted"
        assert node.read_file("/etc/nodewarden/agent.yaml") == config.encode()
        assert not node.exists("/etc/nodewarden/agent.yaml.dpkg-dist")
        assert node.read_file("/var/lib/nodewarden/pki/node.crt") == certificate

        def converged_after_upgrade():
            shown = server.admin_json("nodes", "show", "packaged-1")
            report = shown.get("lastReport", {})
            return shown.get("connected") and report.get("result") == "ok" and \
                int(report.get("finishedAtUs", 0)) > upgraded_at_us
        server.wait_for("a converge report from the upgraded agent", converged_after_upgrade)
        shown = server.admin_json("nodes", "show", "packaged-1")
        assert shown["enrolledUs"] == enrolled["enrolledUs"]
        assert shown["appliedVersion"] == "workers@1"
        assert service(node, MANAGED_UNIT)["InvocationID"] == managed_before["InvocationID"]
        assert node.run(["stat", "-c", "%Y.%y", "/etc/fleet-marker"]).stdout == marker_before
        assert len(server.nodes()) == 1

        # Remove: the agent stops; its configuration and state stay, and so does the node
        # it kept: removing the agent takes no component down.
        debs.dpkg(node, "-r", AGENT)
        assert debs.status(node, AGENT) == f"deinstall ok config-files {newer}"
        assert_stopped_and_gone(node, AGENT_UNIT, "/usr/bin/nodewarden-agent")
        assert node.read_file("/etc/nodewarden/agent.yaml") == config.encode()
        assert node.exists("/etc/nodewarden/node.yaml")
        assert node.read_file("/var/lib/nodewarden/pki/node.crt") == certificate
        assert service(node, MANAGED_UNIT)["InvocationID"] == managed_before["InvocationID"]

        # Purge: configuration and state are gone; the node's components still run.
        debs.dpkg(node, "-P", AGENT)
        assert debs.status(node, AGENT) == ""
        for path in ("/etc/nodewarden/agent.yaml", "/etc/nodewarden/node.yaml", *AGENT_STATE):
            assert not node.exists(path), f"{path} survived the purge"
        assert service(node, MANAGED_UNIT)["ActiveState"] == "active"


def test_server_package_install_upgrade_remove_purge(node: Node, versions, tmp_path):
    current, newer = versions
    server = PackagedServer(node)
    # Configuration management wrote server.yaml before the package came, as for a
    # machine built from an image: dpkg keeps it with --force-confold, and the package's
    # copy is put beside it. A port of its own: nodes share the host's network.
    port = free_port()
    config = f"listen: 127.0.0.1:{port}\nserverNames: [127.0.0.1]\n"
    node.write_file("/etc/nodewarden/server.yaml", config)

    # Install: enabled, started, serving, its store and CA made in its state directory.
    debs.install(node, debs.deb(SERVER, current), "--force-confold")
    assert debs.status(node, SERVER) == f"install ok installed {current}"
    assert node.read_file("/etc/nodewarden/server.yaml") == config.encode()
    assert node.exists("/etc/nodewarden/server.yaml.dpkg-dist")
    before = assert_running(node, SERVER_UNIT)
    assert node.run(["stat", "-c", "%a", "/var/lib/private/nodewarden-server"]).stdout.strip() \
        == "700"
    assert node.exists("/usr/share/man/man8/nodewarden-server.8.gz")
    ca = node.read_file("/var/lib/nodewarden-server/ca.crt")

    # An agent, from its package too, enrolls with it and converges.
    node.write_file("/root/workers.yaml", group_state("served-by-the-package"))
    server.admin("state", "set", "--group", "workers", "/root/workers.yaml")
    token = server.admin("token", "create", "--group", "workers", "--uses", "1").strip()
    pin = server.ca_pin()
    node.write_file("/etc/nodewarden/agent.yaml",
                    f"server: 127.0.0.1:{port}\nbootstrapToken: {token}\ncaCertHash: {pin}\n"
                    "nodeName: packaged-1\n", mode=0o600)
    debs.install(node, debs.deb(AGENT, current), "--force-confold")
    server.wait_for("packaged-1 applied workers@1",
                    lambda: applied(server, "packaged-1", "workers@1"))
    enrolled = server.nodes()["packaged-1"]

    # Upgrade: restarted on the new package with the same configuration, CA and store;
    # the node reconnects under its certificate (the token is used up) and is shown
    # with its last state.
    debs.install(node, debs.deb(SERVER, newer))
    assert debs.status(node, SERVER) == f"install ok installed {newer}"
    after = assert_running(node, SERVER_UNIT)
    assert after["InvocationID"] != before["InvocationID"], "not restarted"
    assert node.read_file("/etc/nodewarden/server.yaml") == config.encode()
    assert node.read_file("/var/lib/nodewarden-server/ca.crt") == ca
    assert server.wait_for("the upgraded server's start in its journal",
                           lambda: len(server.ca_pins()) == 2)
    assert server.ca_pins() == [pin, pin]
    upgraded_at_us = time.time() * 1e6
    server.wait_for("packaged-1 reconnected after the upgrade",
                    lambda: (n := server.nodes().get("packaged-1")) and n.get("connected")
                    and int(n.get("lastSeenUs", 0)) > upgraded_at_us)
    shown = server.nodes()["packaged-1"]
    assert shown["enrolledUs"] == enrolled["enrolledUs"]
    assert shown["appliedVersion"] == "workers@1"

    # Remove: stopped; configuration and the store (with the CA every node trusts) kept.
    # The agent keeps enforcing its cached state without it.
    debs.dpkg(node, "-r", SERVER)
    assert debs.status(node, SERVER) == f"deinstall ok config-files {newer}"
    assert_stopped_and_gone(node, SERVER_UNIT, "/usr/bin/nodewarden-server")
    assert node.read_file("/etc/nodewarden/server.yaml") == config.encode()
    assert node.read_file("/var/lib/nodewarden-server/ca.crt") == ca
    assert node.exists("/var/lib/private/nodewarden-server/store.db")
    assert service(node, AGENT_UNIT)["ActiveState"] == "active"
    assert service(node, MANAGED_UNIT)["ActiveState"] == "active"

    # Purge: configuration, store, CA and keys gone; the agent's files are not the
    # server's to take.
    debs.dpkg(node, "-P", SERVER)
    assert debs.status(node, SERVER) == ""
    for path in ("/etc/nodewarden/server.yaml", "/etc/nodewarden/server.yaml.dpkg-dist",
                 *SERVER_STATE):
        assert not node.exists(path), f"{path} survived the purge"
    assert node.exists("/etc/nodewarden/agent.yaml")
    assert node.exists("/var/lib/nodewarden/pki/node.crt")


def test_agent_package_installs_and_starts_with_a_state_that_installs_packages(node: Node,
                                                                               versions):
    """An image build or cloud-init puts node.yaml in place before the package, declaring
    packages to install. The package's maintainer script starts the agent and waits for it
    to be ready, while dpkg holds its lock for the whole install: an agent that waited for
    that lock before it was ready would hold the install up for its whole lock wait (5
    minutes), then fail its converge. It must be ready first and install after."""
    current, _ = versions
    node.write_file("/etc/nodewarden/node.yaml",
                    "apiVersion: nodewarden.io/v1\nkind: NodeState\npackages:\n  - name: socat\n")
    assert debs.status(node, "socat") == ""
    try:
        # Far below the agent's lock wait, far above an install's few seconds.
        debs.install(node, debs.deb(AGENT, current), "--force-confold", timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("dpkg -i did not return: the agent's start waited for dpkg's lock", False)
    assert_running(node, AGENT_UNIT)

    deadline = time.monotonic() + 180
    while not debs.status(node, "socat").startswith("install ok installed"):
        assert time.monotonic() < deadline, node.run(
            ["journalctl", "-u", AGENT_UNIT, "-o", "cat", "--no-pager"]).stdout
        time.sleep(0.5)
    journal = node.run(["journalctl", "-u", AGENT_UNIT, "-o", "cat", "--no-pager"]).stdout
    assert "Ready before the first package transaction: the package database is locked by" \
        in journal
    assert debs.status(node, AGENT).startswith("install ok installed")
