"""The project's RPM packages for the tests that install them: releases 1 and 2 of
meson.build's version (2 is the "newer build" an upgrade goes to), as
scripts/package-rpm puts them in dist/, and Debian's rpm in a node to install them with.

scripts/test builds both releases before the integration tests run; a test run alone
builds what dist/ lacks (the code is compiled once for both releases).
"""

import functools
import re
import subprocess
from pathlib import Path

from debian_packages import DIST
from harness.node import REPO_ROOT, Node

RELEASES = ("1", "2")


@functools.cache
def version() -> str:
    """The project's version, which the packages carry (scripts/package-rpm reads it too)."""
    found = re.search(r"^\s*version\s*:\s*'([^']*)'", (REPO_ROOT / "meson.build").read_text(),
                      re.MULTILINE)
    if not found:
        raise AssertionError("meson.build declares no version")
    return found.group(1)


@functools.cache
def _architecture() -> str:
    return subprocess.run(["rpm", "--eval", "%{_arch}"], check=True, capture_output=True,
                          text=True).stdout.strip()


def rpm_file(package: str, release: str) -> Path:
    return DIST / f"{package}-{version()}-{release}.{_architecture()}.rpm"


def ensure_built(*releases: str) -> None:
    """Builds the packages of the releases dist/ lacks, with scripts/package-rpm."""
    missing = [r for r in releases if not all(rpm_file(p, r).is_file()
                                               for p in ("nodewarden-agent", "nodewarden-server"))]
    if missing:
        subprocess.run([str(REPO_ROOT / "scripts/package-rpm"), *missing], check=True,
                       stdin=subprocess.DEVNULL, timeout=3600)


def install_rpm_tool(node: Node) -> None:
    """Debian's rpm in the node: its own database in /var/lib/rpm, beside dpkg's."""
    node.apt_install("rpm")


# --nodeps on every install and erase: the packages require Fedora's names (systemd, the
# libraries) that the node's rpm database does not hold; dpkg's has their Debian
# equivalents.

def install(node: Node, package: Path, mode: str = "-i") -> subprocess.CompletedProcess:
    """Copies an .rpm into the node and installs it (-i) or upgrades to it (-U)."""
    inside = f"/root/{package.name}"
    node.write_file(inside, package.read_bytes())
    return node.run(["rpm", mode, "--nodeps", inside], timeout=300)


def erase(node: Node, package: str) -> subprocess.CompletedProcess:
    return node.run(["rpm", "-e", "--nodeps", package], timeout=300)


def installed(node: Node, package: str) -> str:
    """NAME-VERSION-RELEASE.ARCH of the installed package, or "" when it is not installed."""
    result = node.run(["rpm", "-q", package], check=False)
    return result.stdout.strip() if result.returncode == 0 else ""
