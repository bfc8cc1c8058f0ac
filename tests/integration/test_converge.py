"""`nodewarden-agent apply` and `validate`, one-shot, against the real systemd of a node.

test_kill_between_link_and_rename_leaves_no_temporary_file needs strace on the host: it
kills the agent at an exact system call.
"""

import base64
import json
import os
import re
import shutil
import subprocess

import pytest

from agent_helpers import (AGENT, STATE_FILE, AgentProcess, Raw, apply, assert_directories_hold,
                           assert_files_hold, assert_no_op, converge, count_daemon_reloads,
                           diagnostic_pattern, drop_in_file, managed_paths, mode_owner_group,
                           position_of, reload_count, stat_paths, state_yaml, temporary_files,
                           tree_snapshot, unit_file, unit_properties, wait_for, write_state)
from harness.node import NODE_ENV, REPO_ROOT

WEB = "web.service"
LEGACY = "legacy.service"
WEB_UNIT = """[Unit]
Description=a service the state defines

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""
GREETING_DROP_IN = {"name": "10-greeting.conf",
                    "content": "[Service]\nEnvironment=GREETING=hello\n"}
BLOB = bytes(range(256)) * 4


def web_unit(**overrides) -> dict:
    unit = {"name": WEB, "content": WEB_UNIT, "dropIns": [dict(GREETING_DROP_IN)],
            "enabled": True, "state": "running"}
    unit.update(overrides)
    return unit


def full_state() -> dict:
    """Nested directories, inline and base64 files with modes and owners, and two units."""
    return {
        "directories": [
            {"path": "/srv/app", "mode": "0755"},
            {"path": "/srv/app/conf", "mode": "0750", "owner": "nwapp", "group": "nwapp"},
            # Its parents are not declared: they are created on the way.
            {"path": "/srv/app/data/cache/spool", "mode": "1777"},
        ],
        "files": [
            {"path": "/srv/app/conf/app.conf", "mode": "0640", "owner": "nwapp",
             "group": "nwapp", "content": "listen = 8080\nworkers = 4\n"},
            {"path": "/srv/app/blob.bin", "mode": "0600", "owner": "root", "group": "root",
             "contentBase64": base64.b64encode(BLOB).decode()},
            {"path": "/etc/app/motd", "owner": "root", "group": "nwapp", "mode": "0664",
             "content": "no trailing newline"},
        ],
        "units": [
            web_unit(),
            # Installed by a package: no content; the state only wants it off.
            {"name": LEGACY, "enabled": False, "state": "stopped"},
        ],
    }


def prepare_node(node) -> None:
    """What full_state() expects of the node: its user, and a running, enabled package unit."""
    node.run(["useradd", "--system", "--user-group", "--no-create-home", "nwapp"])
    node.write_file(f"/usr/lib/systemd/system/{LEGACY}", WEB_UNIT)
    node.systemctl("daemon-reload")
    node.systemctl("enable", "--now", LEGACY)
    assert unit_properties(node, LEGACY)["ActiveState"] == "active"


def assert_web_runs_as_declared(node) -> None:
    props = unit_properties(node, WEB, ("ActiveState", "UnitFileState", "NeedDaemonReload",
                                        "Environment", "MainPID"))
    assert props["ActiveState"] == "active", props
    assert props["UnitFileState"] == "enabled", props
    assert props["NeedDaemonReload"] == "no", props
    assert props["Environment"] == "GREETING=hello", props
    # The process itself was started with the drop-in loaded.
    environ = node.read_file(f"/proc/{props['MainPID']}/environ").split(b"\0")
    assert b"GREETING=hello" in environ
    assert node.read_file(unit_file(WEB)) == WEB_UNIT.encode()
    assert node.read_file(drop_in_file(WEB, GREETING_DROP_IN["name"])) == \
        GREETING_DROP_IN["content"].encode()


def assert_full_state_holds(node, state: dict) -> None:
    assert_directories_hold(node, state["directories"])
    assert_files_hold(node, state["files"])
    assert_web_runs_as_declared(node)
    legacy = unit_properties(node, LEGACY)
    assert (legacy["ActiveState"], legacy["UnitFileState"]) == ("inactive", "disabled"), legacy


# --- 1 ---------------------------------------------------------------------------------

def test_apply_converges_an_empty_node(agent_node):
    node = agent_node
    prepare_node(node)
    state = full_state()

    run = converge(node, state_yaml(**state))

    assert_full_state_holds(node, state)
    for parent in ("/srv/app/data", "/srv/app/data/cache", "/etc/app"):
        assert mode_owner_group(node, parent) == (0o755, "root", "root"), parent
    actions = run.actions()
    assert all(c["outcome"] == "ok" for c in run.report["changes"]), run.describe()
    assert actions.count(("systemd", "daemon-reload")) == 1, run.describe()
    for expected in [("unit web.service", "enable"), ("unit web.service", "start"),
                     ("unit legacy.service", "disable"), ("unit legacy.service", "stop"),
                     ("file /srv/app/blob.bin", "create")]:
        assert expected in actions, run.describe()
    assert run.report["jobs"] == 2, run.describe()  # start web, stop legacy
    assert run.report["changed"] == len(run.report["changes"]) and not run.report["dryRun"]


# --- 2 ---------------------------------------------------------------------------------

def test_second_apply_is_a_no_op(agent_node):
    node = agent_node
    prepare_node(node)
    state = full_state()
    converge(node, state_yaml(**state))
    count_daemon_reloads(node)
    paths = managed_paths(state)
    files_before = stat_paths(node, paths)
    units_before = {u: unit_properties(node, u) for u in (WEB, LEGACY)}
    reloads_before = reload_count(node)

    assert_no_op(node)

    # No file was rewritten or even chmod'ed: same inode, mtime and ctime, to the nanosecond.
    assert stat_paths(node, paths) == files_before
    # No systemd job ran: a start or restart gives a unit a new InvocationID and timestamps.
    assert {u: unit_properties(node, u) for u in (WEB, LEGACY)} == units_before
    assert reload_count(node) == reloads_before, "a no-op run did a daemon-reload"


# --- 3 ---------------------------------------------------------------------------------

def test_dry_run_changes_nothing(agent_node):
    node = agent_node
    prepare_node(node)
    count_daemon_reloads(node)
    state = full_state()
    write_state(node, state_yaml(**state))
    before = tree_snapshot(node, "/etc", "/srv")
    legacy_before = unit_properties(node, LEGACY)
    reloads_before = reload_count(node)

    run = apply(node, STATE_FILE, "--dry-run", expect=2)

    assert run.report["dryRun"] is True
    assert run.report["jobs"] == 0
    assert {c["outcome"] for c in run.report["changes"]} == {"planned"}, run.describe()
    actions = run.actions()
    for expected in [("directory /srv/app/conf", "create"), ("file /srv/app/conf/app.conf", "create"),
                     ("unit file /etc/systemd/system/web.service", "create"),
                     ("systemd", "daemon-reload"), ("unit web.service", "start"),
                     ("unit legacy.service", "stop")]:
        assert expected in actions, run.describe()
    assert tree_snapshot(node, "/etc", "/srv") == before
    assert unit_properties(node, LEGACY) == legacy_before
    assert unit_properties(node, WEB, ("LoadState",)) == {"LoadState": "not-found"}
    assert reload_count(node) == reloads_before

    apply(node, expect=2)
    converged = tree_snapshot(node, "/etc", "/srv")
    run = apply(node, STATE_FILE, "--dry-run", expect=0)
    assert run.report["changes"] == [] and run.report["dryRun"] is True
    assert tree_snapshot(node, "/etc", "/srv") == converged


# --- 4 ---------------------------------------------------------------------------------

CONF = "/srv/app/app.conf"


def drift_state() -> dict:
    return {"files": [{"path": CONF, "mode": "0640", "content": "level = 3\n"}],
            "units": [web_unit()]}


def _edit_unit_file(node):
    node.run(["sed", "-i", "s|sleep infinity|sleep 86400|", unit_file(WEB)])
    assert unit_properties(node, WEB)["NeedDaemonReload"] == "yes"


def _remove_drop_in(node):
    node.run(["rm", drop_in_file(WEB, GREETING_DROP_IN["name"])])
    assert unit_properties(node, WEB)["NeedDaemonReload"] == "yes"


DRIFTS = {
    "file-deleted": lambda node: node.run(["rm", CONF]),
    "file-mode-changed": lambda node: node.run(["chmod", "0666", CONF]),
    "file-content-edited": lambda node: node.run(["sh", "-c", f"echo 'level = 9' >> {CONF}"]),
    "unit-stopped": lambda node: node.systemctl("stop", WEB),
    "unit-file-edited": _edit_unit_file,
    "drop-in-removed": _remove_drop_in,
}


@pytest.mark.parametrize("drift", DRIFTS)
def test_drift_is_repaired(agent_node, drift):
    node = agent_node
    state = drift_state()
    converge(node, state_yaml(**state))

    DRIFTS[drift](node)
    run = apply(node, expect=2)

    assert run.report["failed"] == 0, run.describe()
    assert_files_hold(node, state["files"])
    assert_web_runs_as_declared(node)
    assert_no_op(node)


# --- 5 ---------------------------------------------------------------------------------

def test_restart_on_restarts_exactly_the_units_that_list_the_file(agent_node):
    node = agent_node
    count_daemon_reloads(node)
    f1, f2 = "/srv/app/one.conf", "/srv/app/two.conf"

    def state(f1_content="one\n", b_extra=""):
        def unit(name, restart_on, extra=""):
            content = f"[Service]\nExecStart=/bin/sleep infinity\n{extra}"
            entry = {"name": name, "content": content, "state": "running"}
            if restart_on:
                entry["restartOn"] = restart_on
            return entry
        return state_yaml(
            files=[{"path": f1, "content": f1_content}, {"path": f2, "content": "two\n"}],
            units=[unit("a.service", [f1]), unit("b.service", [f2], b_extra),
                   unit("c.service", [])])

    def invocations():
        return {u: unit_properties(node, u)["InvocationID"]
                for u in ("a.service", "b.service", "c.service")}

    converge(node, state())
    before, reloads = invocations(), reload_count(node)
    assert all(before.values()), before

    run = converge(node, state(f1_content="one, changed\n"))
    after = invocations()
    assert after["a.service"] != before["a.service"], "a.service was not restarted"
    assert (after["b.service"], after["c.service"]) == (before["b.service"], before["c.service"])
    assert sorted(run.actions()) == [(f"file {f1}", "update"), ("unit a.service", "restart")]
    assert run.report["jobs"] == 1
    assert reload_count(node) == reloads, "a file outside unit directories caused a daemon-reload"

    run = converge(node, state(f1_content="one, changed\n", b_extra="Environment=B=2\n"))
    last = invocations()
    assert last["b.service"] != after["b.service"], "b.service kept its old definition"
    assert (last["a.service"], last["c.service"]) == (after["a.service"], after["c.service"])
    assert unit_properties(node, "b.service", ("Environment",)) == {"Environment": "B=2"}
    assert run.report["jobs"] == 1
    assert reload_count(node) == reloads + 1


# --- 6 ---------------------------------------------------------------------------------

def rejected_base() -> dict:
    return {"files": [{"path": CONF, "content": "level = 3\n"}], "units": [web_unit()]}


def rejected_variant(bad_file: dict | None = None) -> str:
    """A state that changes a file, adds one and stops web.service, plus `bad_file`."""
    files = [{"path": CONF, "content": "level = 4\n"},
             {"path": "/srv/app/new.conf", "content": "new\n"}]
    if bad_file:
        files.append(bad_file)
    return state_yaml(files=files, units=[web_unit(state="stopped")])


def malformed() -> tuple[str, str]:
    text = rejected_variant() + '  - path: "/srv/app/broken.conf"\n    content: [unclosed\n'
    return text, r"^{file}:\d+:\d+: "


def at(text: str, needle: str, field: str, message: str, occurrence: int = 1) -> str:
    line, column = position_of(text, needle, occurrence)
    return rf"^{{file}}:{line}:{column}: {re.escape(field)}: {message}"


def unknown_field():
    text = rejected_variant({"path": "/srv/app/x.conf", "mdoe": "0644", "content": "x\n"})
    return text, at(text, "mdoe", "files[2].mdoe", 'unknown field; did you mean "mode"\\?')


def bad_mode():
    text = rejected_variant({"path": "/srv/app/x.conf", "mode": "0999", "content": "x\n"})
    return text, at(text, '"0999"', "files[2].mode", ".*octal")


def relative_path():
    text = rejected_variant({"path": "srv/app/x.conf", "content": "x\n"})
    return text, at(text, '"srv/app/x.conf"', "files[2].path", ".*not an absolute path")


def duplicate_path():
    text = rejected_variant({"path": CONF, "content": "again\n"})
    first_line, first_column = position_of(text, f'"{CONF}"')
    return text, at(text, f'"{CONF}"', "files[2].path",
                    f"{CONF} is already declared at {{file}}:{first_line}:{first_column}",
                    occurrence=2)


def unknown_owner():
    text = rejected_variant({"path": "/srv/app/x.conf", "owner": "nosuchuser", "content": "x\n"})
    # Checked when planning, against the node's users: no position in the file to give.
    return text, r"^{file}: .*file /srv/app/x\.conf: user nosuchuser does not exist"


REJECTED = {"malformed-yaml": malformed, "unknown-field": unknown_field, "bad-mode": bad_mode,
            "relative-path": relative_path, "duplicate-path": duplicate_path,
            "unknown-owner": unknown_owner}


def test_a_bad_state_is_rejected_with_nothing_changed(agent_node):
    node = agent_node
    converge(node, state_yaml(**rejected_base()))
    count_daemon_reloads(node)

    def node_state():
        return (tree_snapshot(node, "/etc", "/srv"), unit_properties(node, WEB),
                reload_count(node))

    for name, make in REJECTED.items():
        text, expected = make()
        path = f"/root/{name}.yaml"
        write_state(node, text, path)
        before = node_state()

        run = apply(node, path)

        assert run.returncode == 1, f"{name}: {run.describe()}"
        pattern = expected.format(file=path)
        assert any(re.search(pattern, line) for line in run.stderr.splitlines()), \
            f"{name}: no line of stderr matches {pattern!r}:\n{run.stderr}"
        assert "nothing was changed" in run.stderr, f"{name}: {run.stderr}"
        assert node_state() == before, f"{name}: the node changed"
    assert_no_op(node)  # still in the base state
    # Without its defect, each of those states changes the node.
    run = converge(node, rejected_variant())
    assert ("unit web.service", "stop") in run.actions(), run.describe()


# --- 7 ---------------------------------------------------------------------------------

BULK = "/srv/bulk"
BULK_SIZE = 64 * 1024
SLOW = "slow.service"
RACE = 0.002  # polling interval (s) while racing the agent: from the host, a stat is µs


def bulk_path(i: int) -> str:
    return f"{BULK}/f{i:03d}"


def blob(generation: int, i: int) -> bytes:
    """64 KiB that say which generation and which of three blobs they are, on every line."""
    line = f"generation {generation} blob {i % 3} ".ljust(63, ".") + "\n"
    return line.encode() * (BULK_SIZE // 64)


def bulk_state(generation: int, count: int, units: list[dict]) -> str:
    # Three 64 KiB blobs, shared through YAML anchors: 300 inline copies would pass the
    # agent's 16 MiB limit on a state.
    files = []
    for i in range(count):
        value = (f"&blob{i} {json.dumps(blob(generation, i).decode())}" if i < 3
                 else f"*blob{i % 3}")
        files.append({"path": bulk_path(i), "content": Raw(value)})
    return state_yaml(files=files, units=units)


def slow_unit(generation: int) -> dict:
    return {"name": SLOW, "state": "running",
            "content": ("[Service]\nExecStartPre=/bin/sleep 3\nExecStart=/bin/sleep infinity\n"
                        f"Environment=GENERATION={generation}\n")}


def bulk_on_disk(node, count: int) -> dict[int, bytes | None]:
    """Each bulk file's content, read from the host (fast enough to race the agent)."""
    found = {}
    for i in range(count):
        try:
            found[i] = node.host_path(bulk_path(i)).read_bytes()
        except FileNotFoundError:
            found[i] = None
    return found


def bulk_inodes(node, count: int) -> dict[int, int | None]:
    inodes = {}
    for i in range(count):
        try:
            inodes[i] = os.stat(node.host_path(bulk_path(i))).st_ino
        except FileNotFoundError:
            inodes[i] = None
    return inodes


def assert_nothing_partial(node, count: int, generations: set[int]) -> dict[int, int | None]:
    """Each file is missing or holds one generation's content exactly; returns which."""
    held = {}
    for i, data in bulk_on_disk(node, count).items():
        if data is None:
            held[i] = None
            continue
        matches = [g for g in generations if data == blob(g, i)]
        assert matches, (f"{bulk_path(i)} holds {len(data)} bytes that are no generation's "
                         f"content (a partial write?): {data[:80]!r}")
        held[i] = matches[0]
    # A kill between the link and the rename of one file leaves its named temporary (see
    # test_kill_between_link_and_rename_leaves_no_temporary_file): microseconds in the
    # ~10 ms each file takes, which these kills, timed from the host, hit now and then.
    # At most that one; the repair removes it (repair_after_kill checks).
    leftovers = temporary_files(node)
    assert len(leftovers) <= 1, f"temporary files left behind: {leftovers}"
    return held


def repair_after_kill(node) -> None:
    run = apply(node, timeout=180)
    assert run.returncode in (0, 2), run.describe()
    assert run.report["failed"] == 0, run.describe()
    assert temporary_files(node) == []
    assert_no_op(node)


def test_kill_9_mid_apply_leaves_nothing_partial(agent_node):
    node = agent_node
    count = 300

    # Killed while writing files into an empty directory.
    write_state(node, bulk_state(0, count, [slow_unit(0)]))
    agent = AgentProcess(node, "apply", STATE_FILE)
    bulk = node.host_path(BULK)
    wait_for(lambda: bulk.is_dir() and len([n for n in os.listdir(bulk)
                                            if not n.startswith(".")]) >= count // 3,
             60, "a third of the files to be written", interval=RACE)
    agent.kill()
    held = assert_nothing_partial(node, count, {0})
    written = sum(g is not None for g in held.values())
    assert 0 < written < count, f"{written} of {count} files written: not killed midway"
    repair_after_kill(node)
    assert_nothing_partial(node, count, {0})

    # Killed while replacing files: each is the old one or the new one, never a mix.
    old = bulk_inodes(node, count)
    write_state(node, bulk_state(1, count, [slow_unit(1)]))
    agent = AgentProcess(node, "apply", STATE_FILE)
    wait_for(lambda: sum(ino != old[i] for i, ino in bulk_inodes(node, count).items())
             >= 2 * count // 3, 60, "two thirds of the files to be replaced", interval=RACE)
    agent.kill()
    held = assert_nothing_partial(node, count, {0, 1})
    assert {0, 1} <= set(held.values()), "not killed midway through the replacements"
    repair_after_kill(node)
    assert set(assert_nothing_partial(node, count, {1}).values()) == {1}

    # Killed while waiting for systemd to restart the slow unit (its ExecStartPre sleeps).
    write_state(node, bulk_state(2, count, [slow_unit(2)]))
    agent = AgentProcess(node, "apply", STATE_FILE)
    wait_for(lambda: unit_properties(node, SLOW, ("ActiveState",))["ActiveState"] == "activating"
             and unit_properties(node, SLOW, ("Environment",))["Environment"] == "GENERATION=2",
             60, f"{SLOW} to be restarting with its new definition")
    agent.kill()
    assert set(assert_nothing_partial(node, count, {2}).values()) == {2}
    repair_after_kill(node)
    wait_for(lambda: unit_properties(node, SLOW, ("ActiveState",))["ActiveState"] == "active",
             30, f"{SLOW} to become active")
    assert_no_op(node)


def test_a_restart_owed_by_a_killed_run_is_done_by_the_next(agent_node):
    """A run that changed a file and was killed before restarting the units that read it:
    the next run must still restart them, or they keep running with the old file."""
    node = agent_node
    # Enough files after the first that a kill from the host lands before the restart,
    # even on a loaded machine.
    count = 300
    reader = {"name": "reader.service", "state": "running", "restartOn": [bulk_path(0)],
              "content": "[Service]\nExecStart=/bin/sleep infinity\n"}
    converge(node, bulk_state(0, count, [reader]))
    started = unit_properties(node, "reader.service")["InvocationID"]

    old = bulk_inodes(node, count)
    write_state(node, bulk_state(1, count, [reader]))
    agent = AgentProcess(node, "apply", STATE_FILE)
    wait_for(lambda: bulk_inodes(node, 1)[0] != old[0], 60, f"{bulk_path(0)} to be replaced",
             interval=RACE)
    agent.kill()
    held = assert_nothing_partial(node, count, {0, 1})
    assert held[0] == 1 and 0 in held.values(), "not killed between the file and the restart"
    assert unit_properties(node, "reader.service")["InvocationID"] == started

    run = apply(node, expect=2)

    others = [a for a in run.actions() if not a[0].startswith(f"file {BULK}/")]
    assert unit_properties(node, "reader.service")["InvocationID"] != started, (
        f"reader.service still runs with the {bulk_path(0)} it read before that file was "
        f"replaced; besides rewriting the remaining files the repairing run did {others}")


def test_kill_between_link_and_rename_leaves_no_temporary_file(agent_node):
    """The agent names its O_TMPFILE (linkat) and then renames it over the target. A kill
    between the two leaves the named temporary; the next run must clear it away."""
    node = agent_node
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("this test needs strace on the host (apt-get install strace)", pytrace=False)
    target = "/srv/app/app.conf"
    write_state(node, state_yaml(files=[{"path": target, "content": "level = 3\n"}]))

    # strace kills the agent as it enters its first rename: right after the link.
    subprocess.run([strace, "-f", "-qq", "-o", "/dev/null",
                    "-e", "trace=rename,renameat,renameat2",
                    "-e", "inject=rename,renameat,renameat2:signal=KILL",
                    "nsenter", "-t", str(node.leader), "-a", "--", AGENT, "apply", STATE_FILE],
                   env=NODE_ENV, capture_output=True, timeout=60)
    assert not node.exists(target) or node.read_file(target) == b"level = 3\n"

    apply(node, expect=2)
    assert node.read_file(target) == b"level = 3\n"
    leftovers = temporary_files(node)
    assert leftovers == [], f"temporary files a killed run left are still there: {leftovers}"


# --- parents and umask ---------------------------------------------------------------

def test_parent_directories_get_0755_whatever_the_umask(agent_node):
    """Parents the agent creates on the way are 0755 (node_files.h), even when apply runs
    from a hardened root shell with umask 077: else services cannot reach their files."""
    node = agent_node
    state = {"directories": [{"path": "/srv/tree/x/y", "mode": "0750"}],
             "files": [{"path": "/srv/deep/a/b/app.conf", "mode": "0644", "content": "x\n"}]}
    write_state(node, state_yaml(**state))

    result = node.run(["/bin/sh", "-c", f'umask 077; exec {AGENT} apply "$1"', "sh", STATE_FILE],
                      check=False)
    assert result.returncode == 2, result

    assert_directories_hold(node, state["directories"])
    assert_files_hold(node, state["files"])
    modes = {p: f"{mode_owner_group(node, p)[0]:04o}"
             for p in ("/srv/tree", "/srv/tree/x", "/srv/deep", "/srv/deep/a", "/srv/deep/a/b")}
    assert modes == dict.fromkeys(modes, "0755")
    unprivileged = node.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "cat", "/srv/deep/a/b/app.conf"], check=False)
    assert unprivileged.returncode == 0, f"nobody cannot read a 0644 file: {unprivileged.stderr}"


# --- 8 ---------------------------------------------------------------------------------

def test_validate_reports_every_error_with_its_position(agent_node):
    node = agent_node
    example = (REPO_ROOT / "examples/worker-node.yaml").read_text()
    node.write_file("/root/worker-node.yaml", example)

    good = node.run([AGENT, "validate", "/root/worker-node.yaml"], check=False)
    assert good.returncode == 0, good
    assert good.stdout == ("/root/worker-node.yaml: valid (6 packages, 2 artifacts, "
                           "2 kernel modules, 3 sysctls, 5 directories, 4 files, 3 units)\n")
    assert not node.exists("/etc/kubernetes"), "validate changed the node"

    good_json = node.run([AGENT, "validate", "--json", "/root/worker-node.yaml"], check=False)
    assert good_json.returncode == 0, good_json
    assert json.loads(good_json.stdout) == {"file": "/root/worker-node.yaml", "valid": True,
                                            "errors": []}

    bad_text = state_yaml(files=[
        {"path": "/srv/a.conf", "mdoe": "0644", "content": "a\n"},
        {"path": "srv/b.conf", "content": "b\n"},
        {"path": "/srv/c.conf", "mode": "0999", "content": "c\n"},
    ])
    bad = "/root/bad.yaml"
    node.write_file(bad, bad_text)
    expected = [
        (*position_of(bad_text, "mdoe"), "files[0].mdoe"),
        (*position_of(bad_text, '"srv/b.conf"'), "files[1].path"),
        (*position_of(bad_text, '"0999"'), "files[2].mode"),
    ]

    result = node.run([AGENT, "validate", bad], check=False)
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{bad}: 3 errors", result.stderr
    pattern = diagnostic_pattern(bad)
    parsed = []
    for line in lines[:-1]:
        match = pattern.match(line)
        assert match, f"not FILE:LINE:COLUMN: FIELD: MESSAGE: {line!r}"
        parsed.append((int(match[1]), int(match[2]), match[3]))
    assert parsed == expected

    result = node.run([AGENT, "validate", "--json", bad], check=False)
    assert result.returncode == 1, result
    out = json.loads(result.stdout)
    assert set(out) == {"file", "valid", "errors"} and out["file"] == bad and out["valid"] is False
    assert [(e["line"], e["column"], e["path"]) for e in out["errors"]] == expected
    for error in out["errors"]:
        assert set(error) == {"file", "line", "column", "path", "message", "text"}, error
        assert error["file"] == bad and error["message"], error
        assert error["text"] == (f"{bad}:{error['line']}:{error['column']}: "
                                 f"{error['path']}: {error['message']}")
