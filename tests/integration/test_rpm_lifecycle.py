"""The RPM packages' whole life on a node with a real systemd: install, upgrade to a newer
release, erase; for the agent and for the server.

The node is Debian with Debian's rpm beside dpkg, so the packages go in with --nodeps;
what runs is theirs: the files, the %config(noreplace) handling and the scriptlets
(systemd's macros as packaging/rpm/macros.systemd-fallback writes them), under the
node's systemd. An operator of RPM-based machines relies on what docs/install.md says of
them: install applies the system's preset and starts nothing; upgrade restarts a running
service on the new package with its configuration and state kept, and leaves the node it
manages alone; erase stops and disables the service, keeps a configuration file the
operator changed as .rpmsave, and leaves the state.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

import rpm_packages as rpms
from agent_helpers import LAST_APPLIED, status_text, wait_for
from debian_packages import AGENT, SERVER, PackagedServer
from harness.node import REPO_ROOT, Node
from harness.server import free_port
from test_fleet import group_state
from test_package_lifecycle import (AGENT_UNIT, MANAGED_UNIT, SERVER_UNIT, assert_running,
                                    assert_stopped_and_gone, service)

MARKER = "/etc/fleet-marker"  # the file group_state() declares


@pytest.fixture(scope="module")
def releases() -> tuple[str, str]:
    """The release installed first and the newer one the upgrade goes to."""
    rpms.ensure_built(*rpms.RELEASES)
    return rpms.RELEASES


@pytest.fixture
def node(rootfs: Path) -> Iterator[Node]:
    """A node with Debian's rpm (named `node`: a failed test shows its journal)."""
    with Node(rootfs, shared_apt_cache=True) as booted:
        rpms.install_rpm_tool(booted)
        yield booted


def config_flags(node: Node, package: str) -> dict[str, str]:
    """The package's configuration files and their flags (c: %config, n: noreplace)."""
    listed = node.run(["rpm", "-q", "--queryformat", r"[%{FILENAMES} %{FILEFLAGS:fflags}\n]",
                       package]).stdout
    files = dict(line.rsplit(" ", 1) for line in listed.splitlines() if " " in line)
    return {path: flags for path, flags in files.items() if "c" in flags}


def enabled_link(node: Node, unit: str) -> bool:
    """Whether `systemctl enable` left its link: [Install] WantedBy=multi-user.target."""
    link = f"/etc/systemd/system/multi-user.target.wants/{unit}"
    return node.run(["test", "-L", link], check=False).returncode == 0


def assert_installed_unstarted(node: Node, package: str, release: str, unit: str) -> None:
    """Installed, the unit enabled by the preset and not started. Debian's presets
    (systemd's 90-systemd.preset) end in no `disable *`, so a unit they do not name is
    enabled; Fedora's and RHEL's leave it disabled. Either way, %post starts nothing."""
    assert rpms.installed(node, package) == rpms.rpm_file(package, release).stem
    now = service(node, unit)
    assert (now["UnitFileState"], now["ActiveState"]) == ("enabled", "inactive"), now
    assert enabled_link(node, unit)


def assert_runs_installed_binary(node: Node, running: dict[str, str], binary: str) -> None:
    # A process started before rpm replaced its binary would show "… (deleted)".
    exe = node.run(["readlink", f"/proc/{running['MainPID']}/exe"]).stdout.strip()
    assert exe == binary


def upgrade(node: Node, package: str, release: str, unit: str, before: dict[str, str]) -> None:
    """rpm -U to `release`: the package is at it, and its unit was restarted on the new
    binary (%systemd_postun_with_restart)."""
    rpms.install(node, rpms.rpm_file(package, release), "-U")
    assert rpms.installed(node, package) == rpms.rpm_file(package, release).stem
    after = assert_running(node, unit)
    assert after["InvocationID"] != before["InvocationID"], f"{unit} not restarted"
    assert_runs_installed_binary(node, after, f"/usr/bin/{package}")


def test_agent_rpm_install_upgrade_erase(node: Node, releases):
    old, new = releases
    packaged_agent_yaml = (REPO_ROOT / "packaging/config/agent.yaml").read_bytes()

    # Install: the program, its unit, man page and configuration in place; the state
    # directories the package owns, 0700 as the unit makes them.
    rpms.install(node, rpms.rpm_file(AGENT, old))
    for path in ("/usr/bin/nodewarden-agent", "/usr/lib/systemd/system/nodewarden-agent.service",
                 "/usr/share/man/man8/nodewarden-agent.8.gz"):
        assert node.exists(path), f"{path} not installed"
    assert config_flags(node, AGENT) == {"/etc/nodewarden/agent.yaml": "cn",
                                         "/etc/nodewarden/node.yaml": "cn"}
    assert node.read_file("/etc/nodewarden/agent.yaml") == packaged_agent_yaml
    for path in ("/var/lib/nodewarden", "/var/cache/nodewarden"):
        assert node.run(["stat", "-c", "%a", path]).stdout.strip() == "700"
    assert_installed_unstarted(node, AGENT, old, AGENT_UNIT)

    # The operator declares the node's state and starts the agent (no server: the
    # packaged agent.yaml enforces node.yaml); it converges the node.
    state = group_state("from-the-rpm")
    node.write_file("/etc/nodewarden/node.yaml", state)
    node.systemctl("enable", "--now", AGENT_UNIT)
    agent_before = assert_running(node, AGENT_UNIT)
    wait_for(lambda: status_text(node).startswith("In desired state"), 60,
             "the agent to converge the node to node.yaml")
    assert node.read_file(MARKER) == b"from-the-rpm\n"
    managed_before = service(node, MANAGED_UNIT)
    assert managed_before["ActiveState"] == "active"
    marker_before = node.run(["stat", "-c", "%Y.%y", MARKER]).stdout
    last_applied = node.read_file(LAST_APPLIED)

    # Upgrade: the agent restarts on the new package; the edited node.yaml is kept with
    # no .rpmnew beside it (the packaged copy did not change), and so is the state. Its
    # first converge finds nothing to do: nothing of the node is restarted or rewritten.
    upgrade(node, AGENT, new, AGENT_UNIT, agent_before)
    assert node.read_file("/etc/nodewarden/node.yaml") == state.encode()
    assert node.read_file("/etc/nodewarden/agent.yaml") == packaged_agent_yaml
    for path in ("/etc/nodewarden/node.yaml.rpmnew", "/etc/nodewarden/agent.yaml.rpmnew"):
        assert not node.exists(path), f"{path} left by the upgrade"
    assert node.read_file(LAST_APPLIED) == last_applied
    wait_for(lambda: status_text(node).startswith("In desired state"), 60,
             "the upgraded agent's first converge")
    assert service(node, MANAGED_UNIT)["InvocationID"] == managed_before["InvocationID"]
    assert node.run(["stat", "-c", "%Y.%y", MARKER]).stdout == marker_before

    # Erase: the agent is stopped and disabled. The node.yaml the operator wrote is kept
    # as node.yaml.rpmsave, the agent.yaml left as shipped goes, the state stays; so does
    # the node it kept: no component goes down with the agent.
    rpms.erase(node, AGENT)
    assert rpms.installed(node, AGENT) == ""
    assert_stopped_and_gone(node, AGENT_UNIT, "/usr/bin/nodewarden-agent")
    assert not enabled_link(node, AGENT_UNIT)
    assert node.read_file("/etc/nodewarden/node.yaml.rpmsave") == state.encode()
    for path in ("/etc/nodewarden/node.yaml", "/etc/nodewarden/agent.yaml",
                 "/etc/nodewarden/agent.yaml.rpmsave"):
        assert not node.exists(path), f"{path} left by the erase"
    assert node.read_file(LAST_APPLIED) == last_applied
    assert service(node, MANAGED_UNIT)["InvocationID"] == managed_before["InvocationID"]
    assert node.read_file(MARKER) == b"from-the-rpm\n"


def test_server_rpm_install_upgrade_erase(node: Node, releases):
    old, new = releases
    server = PackagedServer(node)
    # Configuration management wrote server.yaml before the package came, as for a
    # machine built from an image: rpm keeps it and puts the packaged copy beside it.
    # A port of its own: nodes share the host's network.
    port = free_port()
    config = f"listen: 127.0.0.1:{port}\nserverNames: [127.0.0.1]\n"
    node.write_file("/etc/nodewarden/server.yaml", config)

    # Install: program, unit, man page in place; nothing started.
    rpms.install(node, rpms.rpm_file(SERVER, old))
    for path in ("/usr/bin/nodewarden-server",
                 "/usr/lib/systemd/system/nodewarden-server.service",
                 "/usr/share/man/man8/nodewarden-server.8.gz"):
        assert node.exists(path), f"{path} not installed"
    assert config_flags(node, SERVER) == {"/etc/nodewarden/server.yaml": "cn"}
    assert node.read_file("/etc/nodewarden/server.yaml") == config.encode()
    assert node.read_file("/etc/nodewarden/server.yaml.rpmnew") == \
        (REPO_ROOT / "packaging/config/server.yaml").read_bytes()
    assert_installed_unstarted(node, SERVER, old, SERVER_UNIT)

    # The operator has compared the packaged copy, removes it and starts the server; it
    # makes its store and CA, and takes a desired state.
    node.run(["rm", "/etc/nodewarden/server.yaml.rpmnew"])
    node.systemctl("enable", "--now", SERVER_UNIT)
    before = assert_running(node, SERVER_UNIT)
    assert node.run(["stat", "-c", "%a", "/var/lib/private/nodewarden-server"]).stdout.strip() \
        == "700"
    ca = node.read_file("/var/lib/nodewarden-server/ca.crt")
    node.write_file("/root/workers.yaml", group_state("stored-by-the-rpm"))
    server.admin("state", "set", "--group", "workers", "/root/workers.yaml")
    stored = server.admin_json("state", "show", "--group", "workers")
    assert stored["states"][0]["document"] == group_state("stored-by-the-rpm")

    # Upgrade: restarted on the new package with the same configuration, CA and store.
    upgrade(node, SERVER, new, SERVER_UNIT, before)
    assert node.read_file("/etc/nodewarden/server.yaml") == config.encode()
    assert not node.exists("/etc/nodewarden/server.yaml.rpmnew")
    assert node.read_file("/var/lib/nodewarden-server/ca.crt") == ca
    assert server.admin_json("state", "show", "--group", "workers") == stored

    # Erase: stopped and disabled; server.yaml kept as .rpmsave; the store and the CA
    # every node trusts stay (the state directory is systemd's, not the package's).
    rpms.erase(node, SERVER)
    assert rpms.installed(node, SERVER) == ""
    assert_stopped_and_gone(node, SERVER_UNIT, "/usr/bin/nodewarden-server")
    assert not enabled_link(node, SERVER_UNIT)
    assert node.read_file("/etc/nodewarden/server.yaml.rpmsave") == config.encode()
    assert not node.exists("/etc/nodewarden/server.yaml")
    assert node.read_file("/var/lib/nodewarden-server/ca.crt") == ca
    assert node.exists("/var/lib/private/nodewarden-server/store.db")
