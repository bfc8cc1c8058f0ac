"""The unit files as shipped, checked by systemd itself: `systemd-analyze verify` finds
nothing in them, and `systemd-analyze security` rates the server's sandbox at most 2.0.

That the server starts and serves under its unit is test_fleet.py's
test_server_runs_under_its_hardened_unit_and_a_node_enrolls_with_it.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.node import REPO_ROOT, Node

UNITS = ("nodewarden-agent.service", "nodewarden-server.service")
SERVER_MAX_EXPOSURE = 2.0


@pytest.fixture
def node(rootfs: Path, build_dir: Path) -> Iterator[Node]:
    """A node with both programs and their units installed (named `node`: a failed test
    shows its journal)."""
    with Node(rootfs, shared_apt_cache=True) as booted:
        try:
            booted.install_agent(build_dir)
            booted.install_server(build_dir)
        except FileNotFoundError as e:
            pytest.fail(str(e), pytrace=False)
        yield booted


def install_man_pages(node: Node) -> None:
    """man, as on a standard Debian install, and the pages the packages install."""
    node.apt_install("man-db")
    for page in sorted((REPO_ROOT / "docs/man").glob("*.8")):
        node.write_file(f"/usr/share/man/man8/{page.name}", page.read_bytes())


def test_systemd_analyze_verify_finds_nothing_in_either_unit(node: Node) -> None:
    # verify also runs `man` on every man: page in Documentation=, and fails when one
    # is missing: the pages are installed as the packages install them.
    install_man_pages(node)
    for unit in UNITS:
        result = node.run(["systemd-analyze", "verify", f"/etc/systemd/system/{unit}"],
                          check=False)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit
        page = f"man:{unit.removesuffix('.service')}(8)"
        assert page in node.unit_property(unit, "Documentation"), unit


def test_server_sandbox_exposure_is_at_most_2(node: Node) -> None:
    result = node.run(["systemd-analyze", "security", "--no-pager", UNITS[1]])
    found = re.search(rf"Overall exposure level for {re.escape(UNITS[1])}: (\d+\.\d+)",
                      result.stdout)
    assert found, result.stdout
    assert float(found.group(1)) <= SERVER_MAX_EXPOSURE, result.stdout
