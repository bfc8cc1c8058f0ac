import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import rootfs as rootfs_image
from harness.node import REPO_ROOT, Node


@pytest.fixture(scope="session")
def rootfs() -> Path:
    return rootfs_image.ensure()


@pytest.fixture
def node(rootfs: Path) -> Iterator[Node]:
    with Node(rootfs) as booted:
        yield booted


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return Path(os.environ.get("NODEWARDEN_BUILD_DIR", REPO_ROOT / "build"))


@pytest.fixture
def agent_node(node: Node, build_dir: Path) -> Node:
    try:
        node.install_agent(build_dir)
    except FileNotFoundError as e:
        missing = str(e)
    else:
        return node
    pytest.fail(missing, pytrace=False)  # outside the handler: the message alone says it all


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # A failed test shows what happened inside its node, while the node still exists.
    report = (yield).get_result()
    booted = item.funcargs.get("node") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and booted is not None and booted.running:
        journal = booted.run(["journalctl", "--boot", "--no-pager", "--lines=200"], check=False)
        report.sections.append((f"journal of {booted.name}", journal.stdout))
