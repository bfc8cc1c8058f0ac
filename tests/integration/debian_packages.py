"""The project's Debian packages for the tests that install them: the version
packaging/debian/changelog names and the next revision of it, the "newer build" an
upgrade goes to, both as scripts/package-deb puts them in dist/.

scripts/test builds them before the integration tests run; a test run alone builds
what dist/ lacks (about ten minutes: the code is compiled once for both versions).
"""

import functools
import json
import re
import subprocess
import time
from pathlib import Path

from harness.node import REPO_ROOT, Node

DIST = REPO_ROOT / "dist"
AGENT = "nodewarden-agent"
SERVER = "nodewarden-server"


def current_version() -> str:
    return subprocess.run(["dpkg-parsechangelog", "-l", str(REPO_ROOT / "packaging/debian/changelog"),
                           "-S", "Version"], check=True, capture_output=True, text=True).stdout.strip()


def next_version(version: str) -> str:
    """The next Debian revision: 0.1.0-1 → 0.1.0-2."""
    upstream, revision = version.rsplit("-", 1)
    return f"{upstream}-{int(revision) + 1}"


@functools.cache
def architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()


def deb(package: str, version: str) -> Path:
    return DIST / f"{package}_{version}_{architecture()}.deb"


def ensure_built(*versions: str) -> None:
    """Builds the packages of the versions dist/ lacks, with scripts/package-deb."""
    missing = [v for v in versions if not all(deb(p, v).is_file() for p in (AGENT, SERVER))]
    if missing:
        subprocess.run([str(REPO_ROOT / "scripts/package-deb"), *missing], check=True,
                       stdin=subprocess.DEVNULL, timeout=3600)


# What goes into no package: a change there needs no new one.
_NOT_PACKAGED = ("tests/", "bench/", ".ci/", "scripts/demo", "scripts/test", "scripts/fuzz")


def ensure_fresh(version: str) -> bool:
    """Builds the packages of `version` unless dist/ has them newer than every file they
    are made from (what git tracks or would track, but for tests, benchmarks and the
    scripts that run them). Returns whether it built them."""
    built = [deb(p, version) for p in (AGENT, SERVER)]
    if all(b.is_file() for b in built):
        oldest = min(b.stat().st_mtime for b in built)
        sources = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached",
                                  "--others", "--exclude-standard"], capture_output=True)
        if sources.returncode == 0:
            paths = (REPO_ROOT / f for f in sources.stdout.decode().split("\0")
                     if f and not f.startswith(_NOT_PACKAGED))
            if all(p.stat().st_mtime < oldest for p in paths if p.is_file()):
                return False
    subprocess.run([str(REPO_ROOT / "scripts/package-deb"), version], check=True,
                   stdin=subprocess.DEVNULL, timeout=3600)
    return True


def dpkg(node: Node, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """dpkg in the node as an unattended install runs it: no terminal, no questions."""
    return node.run(["env", "DEBIAN_FRONTEND=noninteractive", "dpkg", *args], timeout=timeout)


def install(node: Node, package: Path, *options: str,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Copies a .deb into the node and installs it with dpkg -i."""
    inside = f"/root/{package.name}"
    node.write_file(inside, package.read_bytes())
    return dpkg(node, *options, "-i", inside, timeout=timeout)


def status(node: Node, package: str) -> str:
    """dpkg's status of a package in the node: "install ok installed", "deinstall ok
    config-files", or "" once purged."""
    result = node.run(["dpkg-query", "-W", "--showformat=${Status} ${Version}", package],
                      check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


class PackagedServer:
    """nodewarden-server as its package runs it in a node: under its unit, administered
    with its own CLI over the admin socket, as root in that node."""

    UNIT = "nodewarden-server.service"

    def __init__(self, node: Node):
        self.node = node

    def admin(self, *args: str) -> str:
        return self.node.run(["nodewarden-server", *args]).stdout

    def admin_json(self, *args: str):
        return json.loads(self.admin(*args, "--json"))

    def nodes(self) -> dict:
        return {n["name"]: n for n in self.admin_json("nodes", "list").get("nodes", [])}

    def ca_pin(self) -> str:
        """The pin the server logged at its latest start, which an operator copies into
        agent.yaml."""
        if not (pins := self.ca_pins()):
            raise AssertionError(f"the server logged no CA pin:\n{self.journal()}")
        return pins[-1]

    def ca_pins(self) -> list[str]:
        """The pin logged at each start, oldest first."""
        return re.findall(r"CA pin (sha256:[0-9a-f]{64})", self.journal())

    def journal(self) -> str:
        return self.node.run(["journalctl", "-u", self.UNIT, "-o", "cat", "--no-pager"],
                             check=False).stdout

    def wait_for(self, what: str, predicate, timeout: float = 90.0):
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:g} s; nodes: {self.nodes()}\n"
                                   f"server journal:\n{self.journal()[-4000:]}")
            time.sleep(0.3)
        return value
