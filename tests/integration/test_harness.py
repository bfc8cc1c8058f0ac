"""The harness itself: nodes boot a real systemd, answer commands, reboot, and leave nothing."""

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.node import REBOOT_STATUS, BootError, CommandError, Node
from harness.rootfs import mounts_below


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # an orphan's zombie lingers until the host's init reaps it


def leftovers(name: str, pids: list[int], node_dir: Path) -> list[str]:
    found = [f"process {pid}" for pid in pids if alive(pid)]
    found += [f"mount {m}" for m in mounts_below(node_dir)]
    found += [f"cgroup {c}" for c in Path("/sys/fs/cgroup").glob(f"**/{name}")]
    found += [f"directory {node_dir}"] if node_dir.exists() else []
    return found


def processes_in(leader: int) -> list[int]:
    """Every host PID in the node's PID namespace."""
    namespace = os.readlink(f"/proc/{leader}/ns/pid")
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "ns/pid") == namespace:
                found.append(int(proc.name))
        except OSError:
            pass  # exited meanwhile
    return found


def test_node_boots_a_real_systemd(node):
    assert node.run(["systemctl", "is-system-running"]).stdout == "running\n"
    assert node.run(["cat", "/proc/1/comm"]).stdout == "systemd\n"
    assert node.run(["hostname"]).stdout == f"{node.name}\n"
    assert node.unit_property("systemd-journald.service", "ActiveState") == "active"


def test_run_returns_output_and_status(node):
    result = node.run("echo out; echo err >&2; exit 3", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert node.run(["cat"], input="through stdin").stdout == "through stdin"
    with pytest.raises(CommandError, match="no-such-file"):
        node.run(["ls", "/no-such-file"])


def test_files_round_trip(node):
    data = bytes(range(256))
    node.write_file("/etc/nodewarden/blob", data, mode=0o600)
    assert node.read_file("/etc/nodewarden/blob") == data
    assert node.run(["stat", "-c", "%a", "/etc/nodewarden/blob"]).stdout == "600\n"
    assert node.host_path("/etc/nodewarden/blob").read_bytes() == data
    assert node.exists("/etc/nodewarden/blob")
    assert not node.exists("/etc/nodewarden/missing")
    # /run is the node's own tmpfs: only reachable from inside.
    node.write_file("/run/nodewarden/marker", "inside")
    assert node.read_file("/run/nodewarden/marker") == b"inside"
    assert not node.host_path("/run/nodewarden/marker").exists()


def test_units_start_and_report_properties(node):
    node.write_file("/etc/systemd/system/sleeper.service",
                    "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\n")
    node.systemctl("daemon-reload")
    node.systemctl("start", "sleeper.service")
    assert node.unit_property("sleeper.service", "ActiveState") == "active"
    assert node.unit_property("sleeper.service", "Restart") == "always"
    main_pid = node.unit_property("sleeper.service", "MainPID")
    assert node.run(["cat", f"/proc/{main_pid}/comm"]).stdout == "sleep\n"


def test_stop_leaves_nothing_behind(rootfs):
    node = Node(rootfs)
    with node:
        node.run(["systemd-run", "--unit=lingering", "/bin/sleep", "infinity"])
        pids = [node.pid, *processes_in(node.leader)]
        assert len(pids) > 3
    assert leftovers(node.name, pids, node.dir) == []


def test_reboot_keeps_the_upper_layer(node):
    node.write_file("/var/lib/nodewarden/survivor", "written before the reboot\n")
    machine_id = node.read_file("/etc/machine-id")
    boot_id = node.read_file("/proc/sys/kernel/random/boot_id")

    node.run(["systemctl", "reboot"])
    assert node.wait_exit(timeout=60) == REBOOT_STATUS
    node.boot()

    assert node.read_file("/var/lib/nodewarden/survivor") == b"written before the reboot\n"
    assert node.read_file("/etc/machine-id") == machine_id
    assert node.read_file("/proc/sys/kernel/random/boot_id") != boot_id
    assert node.run(["systemctl", "is-system-running"]).stdout == "running\n"


def test_boot_failure_shows_the_console_and_cleans_up(tmp_path):
    (tmp_path / "etc").mkdir()  # a directory tree, but no OS in it
    node = Node(tmp_path)
    with pytest.raises(BootError, match="os-release"):
        with node:
            pass
    assert leftovers(node.name, [], node.dir) == []


ANOTHER_RUN = """
import time
from harness.node import Node
node = Node({rootfs!r})
node.boot()
print(node.name, node.pid, node.leader, node.dir, flush=True)
time.sleep(120)
"""


def boot_in_another_run(rootfs: Path, end: signal.Signals) -> tuple[str, list[int], Path]:
    """Boots a node from another Python process, then ends that process with a signal."""
    run = subprocess.Popen([sys.executable, "-c", ANOTHER_RUN.format(rootfs=str(rootfs))],
                           cwd=Path(__file__).parent, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        booted = run.stdout.readline()
        run.send_signal(end)
        run.wait(timeout=60)
    finally:
        run.kill()
        run.wait()
    assert booted, run.stderr.read()
    name, nspawn, leader, node_dir = booted.split()
    return name, [int(nspawn), int(leader)], Path(node_dir)


def test_terminated_run_stops_its_nodes(rootfs):
    name, pids, node_dir = boot_in_another_run(rootfs, signal.SIGTERM)
    assert leftovers(name, pids, node_dir) == []


def test_killed_run_is_cleaned_up_by_the_next(rootfs):
    name, pids, node_dir = boot_in_another_run(rootfs, signal.SIGKILL)
    # nspawn gets SIGTERM when its parent dies, and halts the node.
    for pid in pids:
        try:
            exited = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        assert select.select([exited], [], [], 30)[0], f"process {pid} still runs"
        os.close(exited)
    assert node_dir.exists()
    with Node(rootfs):
        pass
    assert leftovers(name, pids, node_dir) == []
