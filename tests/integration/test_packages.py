"""Packages through real apt and dpkg in a node: install, pin, hold, upgrade, remove.

containerd comes from Debian's archive, as on a real node. nw-probe, a package made
here in two versions and served from a flat repository inside the node, stands in
where a test needs what the archive doesn't offer: an upgrade.
"""

import fcntl
import re
import threading
import time
from pathlib import Path

import pytest

from agent_helpers import apply, assert_no_op, state_yaml, unit_properties, write_state
from harness import apt_repo
from harness.node import Node

REPO = "/srv/nw-repo"
PROBE = "nw-probe"
PROBE_UNIT = f"{PROBE}.service"


@pytest.fixture
def apt_node(rootfs: Path, build_dir: Path, tmp_path: Path):
    """A node with the agent, the shared apt cache and the nw-probe repository (1.0, 2.0)."""
    with Node(rootfs, shared_apt_cache=True) as node:
        node.install_agent(build_dir)
        repo = tmp_path / "repo"
        repo.mkdir()
        for version in ("1.0", "2.0"):
            apt_repo.build_deb(repo, PROBE, version, {
                f"/usr/share/{PROBE}/version": version + "\n",
                f"/lib/systemd/system/{PROBE_UNIT}":
                    "[Service]\nExecStart=/bin/sleep infinity\n\n"
                    "[Install]\nWantedBy=multi-user.target\n",
            })
        apt_repo.write_index(repo)
        for deb in repo.iterdir():
            node.write_file(f"{REPO}/{deb.name}", deb.read_bytes())
        node.write_file("/etc/apt/sources.list.d/nw-repo.list",
                        f"deb [trusted=yes] file:{REPO} ./\n")
        yield node


def installed_version(node: Node, name: str) -> str | None:
    result = node.run(["dpkg-query", "-W", "--showformat=${Status}\t${Version}", name], check=False)
    # "install ok installed", or "hold ok installed" for a held package.
    if result.returncode != 0 or " ok installed\t" not in result.stdout:
        return None
    return result.stdout.split("\t")[1]


def archive_candidate(node: Node, name: str) -> str:
    policy = node.run(["apt-cache", "policy", name]).stdout
    return re.search(r"Candidate: (\S+)", policy).group(1)


def held(node: Node) -> set[str]:
    return set(node.run(["apt-mark", "showhold"]).stdout.split())


def probe_state(version: str, **extra) -> str:
    return state_yaml(
        packages=[{"name": PROBE, "version": version, "hold": True}, *extra.get("packages", [])],
        files=extra.get("files", []),
        units=[{"name": PROBE_UNIT, "enabled": True, "state": "running", "restartOn": [PROBE]},
               *extra.get("units", [])])


def test_containerd_pinned_running_then_no_op(apt_node: Node) -> None:
    node = apt_node
    # Pinned to what the archive has today: found at run time, not written into the test.
    node.run(["apt-get", "update", "-q"])
    containerd = archive_candidate(node, "containerd")
    write_state(node, state_yaml(
        packages=[{"name": "containerd", "version": containerd, "hold": True},
                  {"name": "socat"}],
        units=[{"name": "containerd.service", "enabled": True, "state": "running",
                "restartOn": ["containerd"]}]))
    run = apply(node, expect=2, timeout=600)
    assert run.report["failed"] == 0, run.describe()
    assert ("package containerd", "install") in run.actions()
    assert ("package containerd", "hold") in run.actions()
    assert installed_version(node, "containerd") == containerd
    assert installed_version(node, "socat") is not None
    assert "containerd" in held(node)
    assert node.systemctl("is-active", "containerd.service").stdout.strip() == "active"
    version = node.run(["ctr", "version"]).stdout
    assert "Server:" in version and containerd.split("~")[0] in version, version

    before = unit_properties(node, "containerd.service")
    assert_no_op(node)
    assert unit_properties(node, "containerd.service") == before


def test_hold_upgrade_restart_missing_version_and_removal(apt_node: Node) -> None:
    node = apt_node
    write_state(node, probe_state("1.0"))
    run = apply(node, expect=2, timeout=300)
    assert run.report["failed"] == 0, run.describe()
    assert installed_version(node, PROBE) == "1.0"
    assert PROBE in held(node)
    assert_no_op(node)

    # An operator's upgrade of everything leaves a held package where it is.
    upgrade = node.run("DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q")
    assert installed_version(node, PROBE) == "1.0", upgrade.stdout
    assert "kept back" in upgrade.stdout or PROBE not in upgrade.stdout

    # The state moves the pin: the held package is upgraded, and its unit restarts.
    before = unit_properties(node, PROBE_UNIT)
    write_state(node, probe_state("2.0"))
    run = apply(node, expect=2, timeout=300)
    assert run.report["failed"] == 0, run.describe()
    assert ("package nw-probe", "upgrade") in run.actions()
    assert (f"unit {PROBE_UNIT}", "restart") in run.actions()
    assert installed_version(node, PROBE) == "2.0"
    assert PROBE in held(node)
    assert unit_properties(node, PROBE_UNIT)["InvocationID"] != before["InvocationID"]
    assert_no_op(node)

    # A version the archive doesn't have: refused with what it offers; nothing changes,
    # not even the unrelated file in the same state.
    write_state(node, probe_state("9.9", files=[{"path": "/etc/nw-marker", "content": "x\n"}]))
    run = apply(node, expect=1, timeout=300)
    assert "nw-probe" in run.stderr and "9.9" in run.stderr, run.describe()
    assert "2.0" in run.stderr and "1.0" in run.stderr, run.describe()
    assert "nothing was changed" in run.stderr
    assert not node.exists("/etc/nw-marker")
    assert installed_version(node, PROBE) == "2.0"

    # Removal, in the same transaction as an install.
    write_state(node, state_yaml(packages=[{"name": PROBE, "ensure": "absent"},
                                           {"name": "socat"}]))
    run = apply(node, expect=2, timeout=300)
    assert run.report["failed"] == 0, run.describe()
    assert installed_version(node, PROBE) is None
    assert installed_version(node, "socat") is not None
    assert_no_op(node)


def test_waits_for_the_dpkg_lock_and_says_so(apt_node: Node) -> None:
    node = apt_node
    # Another package manager (unattended-upgrades, say) holds dpkg's lock for a while.
    lock_path = node.host_path("/var/lib/dpkg/lock-frontend")
    lock = open(lock_path, "a")
    fcntl.lockf(lock, fcntl.LOCK_EX)
    release = threading.Timer(6.0, lambda: (fcntl.lockf(lock, fcntl.LOCK_UN), lock.close()))
    release.start()
    try:
        write_state(node, state_yaml(packages=[{"name": PROBE, "version": "1.0"}]))
        started = time.monotonic()
        run = apply(node, expect=2, timeout=300)
        waited = time.monotonic() - started
    finally:
        release.join()
    assert run.report["failed"] == 0, run.describe()
    assert installed_version(node, PROBE) == "1.0"
    assert waited >= 5.0, f"apply finished in {waited:.1f}s, before the lock was released"
    assert "lock" in run.stderr, run.describe()
