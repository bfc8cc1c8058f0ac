"""BusSystemdManager against a real systemd: the gtest binary built from
tests/integration/systemd_client runs inside a node, as root, next to PID 1."""

from pathlib import Path

import pytest

from harness.node import Node

BINARY = "tests/integration/systemd_client/systemd_client_test"
INSTALLED = "/usr/local/bin/systemd_client_test"


def install(node: Node, build_dir: Path) -> None:
    binary = Path(build_dir) / BINARY
    if not binary.is_file():
        pytest.fail(f"{binary} does not exist: build it first (ninja -C {build_dir})",
                    pytrace=False)
    node.write_file(INSTALLED, binary.read_bytes(), 0o755)


def run(node: Node, command: str) -> str:
    # One stream, so the address each test connected through sits next to it.
    result = node.run(f"{command} 2>&1", check=False, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_systemd_client(node: Node, build_dir: Path):
    install(node, build_dir)
    output = run(node, f"{INSTALLED} --gtest_color=no")
    assert "connected to systemd through unix:path=/run/systemd/private" in output


def test_systemd_client_falls_back_to_the_system_bus(node: Node, build_dir: Path):
    install(node, build_dir)
    # In a mount namespace of its own, the private socket is no socket at all.
    output = run(node, "unshare --mount sh -c 'mount --bind /dev/null /run/systemd/private && "
                       f"exec {INSTALLED} --gtest_color=no --gtest_filter="
                       "*WholeLife*:*FailingService*:*MissingUnit*:*TakesTooLong*:*Concurrent*:"
                       "*KilledService*:*OperatorStop*:*OutlivesSystemdReexecuting*'")
    assert "connected to systemd through unix:path=/run/dbus/system_bus_socket" in output
    assert "/run/systemd/private" not in output
