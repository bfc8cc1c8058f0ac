"""What the agent's integration tests share: states, runs of the agent, looks at the node.

Everything here observes the node from inside it (through `Node.run`), as an operator
would, except where a test needs the host's speed (polling while the agent runs).
"""

import base64
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.node import NODE_ENV, Node

AGENT = "/usr/bin/nodewarden-agent"
STATE_FILE = "/etc/nodewarden/node.yaml"  # the daemon's default stateFile
AGENT_CONFIG = "/etc/nodewarden/agent.yaml"
LAST_APPLIED = "/var/lib/nodewarden/last-applied.yaml"
AGENT_UNIT = "nodewarden-agent.service"
TEMPORARY_PREFIX = ".nodewarden-"  # the agent's temporary files are named .nodewarden-*

# What a test compares across a run to tell whether systemd did anything to a unit.
UNIT_PROPERTIES = ("ActiveState", "SubState", "InvocationID", "ActiveEnterTimestampMonotonic",
                   "MainPID", "UnitFileState", "NeedDaemonReload")


# ---------------------------------------------------------------------------------------
# Desired states

class Raw(str):
    """A value state_yaml writes as it is: an anchored value, an alias, a deliberate error."""


def state_yaml(*, directories=(), files=(), units=(), packages=(), artifacts=(),
               sysctls=None, kernel_modules=()) -> str:
    """A NodeState document from lists of dicts keyed as the YAML is (lowerCamelCase).

    Multi-line content is written as a literal block, as people write it; anything else
    as a double-quoted (JSON) string, which YAML reads the same way.
    """
    lines = ["apiVersion: nodewarden.io/v1", "kind: NodeState",
             "metadata:", "  name: integration-test"]
    for key, items in (("packages", packages), ("artifacts", artifacts),
                       ("directories", directories), ("files", files), ("units", units)):
        if items:
            lines.append(f"{key}:")
            for item in items:
                lines += _sequence_item(item, indent=2)
    if sysctls:
        lines.append("sysctls:")
        lines += [f"  {key}: {json.dumps(str(value))}" for key, value in sysctls.items()]
    if kernel_modules:
        lines.append(f"kernelModules: [{', '.join(kernel_modules)}]")
    return "\n".join(lines) + "\n"


def _sequence_item(item: dict, indent: int) -> list[str]:
    out = []
    for i, (key, value) in enumerate(item.items()):
        prefix = " " * indent + ("- " if i == 0 else "  ")
        inner = indent + 2
        if isinstance(value, Raw):
            out.append(f"{prefix}{key}: {value}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.append(f"{prefix}{key}:")
            for sub in value:
                out += _sequence_item(sub, inner + 2)
        elif isinstance(value, list):
            out.append(f"{prefix}{key}: [{', '.join(json.dumps(v) for v in value)}]")
        elif isinstance(value, str) and _fits_literal_block(value):
            out.append(f"{prefix}{key}: |")
            out += [(" " * (inner + 2) + line).rstrip(" ") if line else ""
                    for line in value[:-1].split("\n")]
        else:
            out.append(f"{prefix}{key}: {json.dumps(value)}")
    return out


def _fits_literal_block(text: str) -> bool:
    # "|" keeps the text exactly when it ends in one newline and nothing needs escaping.
    return ("\n" in text[:-1] and text.endswith("\n") and not text.endswith("\n\n")
            and not text.startswith((" ", "\n"))
            and all(c in "\n\t" or c.isprintable() for c in text)
            and not any(line.endswith(" ") for line in text.split("\n")))


def position_of(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the start of `needle`'s n-th occurrence in `text`."""
    at = -1
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def file_bytes(entry: dict) -> bytes:
    """What a state's file entry should hold on the node."""
    if "contentBase64" in entry:
        return base64.b64decode(entry["contentBase64"])
    return entry.get("content", "").encode()


# ---------------------------------------------------------------------------------------
# Running the agent

@dataclass
class AgentRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict | None  # the parsed --json output, when there was one

    def describe(self) -> str:
        return (f"exit status {self.returncode}\n--- stdout ---\n{self.stdout}"
                f"--- stderr ---\n{self.stderr}")

    def actions(self) -> list[tuple[str, str]]:
        return [(c["resource"], c["action"]) for c in self.report["changes"]]


def write_state(node: Node, text: str, path: str = STATE_FILE) -> str:
    node.write_file(path, text)
    return path


def agent(node: Node, *args: str, timeout: float = 120) -> AgentRun:
    """Runs the agent once in the node; parses its JSON output when asked for with --json."""
    result = node.run([AGENT, *args], check=False, timeout=timeout)
    report = None
    if "--json" in args and result.stdout.strip():
        report = json.loads(result.stdout)
    return AgentRun(result.returncode, result.stdout, result.stderr, report)


def apply(node: Node, path: str = STATE_FILE, *flags: str, expect: int | None = None,
          timeout: float = 120) -> AgentRun:
    """`nodewarden-agent apply --json`; with `expect`, asserts its exit status."""
    run = agent(node, "apply", "--json", *flags, path, timeout=timeout)
    if expect is not None:
        assert run.returncode == expect, f"apply {' '.join(flags)}: {run.describe()}"
    return run


def converge(node: Node, text: str, path: str = STATE_FILE) -> AgentRun:
    """Writes a state and applies it; it must change something and fail nothing."""
    write_state(node, text, path)
    run = apply(node, path, expect=2)
    assert run.report["failed"] == 0, run.describe()
    return run


def assert_no_op(node: Node, path: str = STATE_FILE) -> AgentRun:
    run = apply(node, path, expect=0)
    assert (run.report["changed"], run.report["jobs"], run.report["changes"]) == (0, 0, []), \
        run.describe()
    return run


class AgentProcess:
    """`nodewarden-agent ARGS` started in the node in the background, to be killed midway.

    nsenter forks the command into the node's PID namespace; its child is the agent,
    which the test signals through a pidfd (never a PID that may be reused).
    """

    def __init__(self, node: Node, *args: str):
        self.nsenter = subprocess.Popen(
            ["nsenter", "-t", str(node.leader), "-a", "--", AGENT, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=NODE_ENV)
        self.pidfd = None
        wait_for(self._find_agent, 10, "the agent to start under nsenter")

    def _find_agent(self) -> bool:
        for task in Path(f"/proc/{self.nsenter.pid}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except FileNotFoundError:
                continue
            for child in children:
                fd = _pidfd_open(int(child))
                if fd is None:
                    continue
                try:
                    exe = os.readlink(f"/proc/{child}/exe")  # as the node sees it
                except OSError:
                    exe = ""
                if exe == AGENT:
                    self.pidfd = fd
                    return True
                os.close(fd)  # still nsenter's fork, before its exec
        if self.nsenter.poll() is not None:
            out, err = self.nsenter.communicate()
            raise AssertionError(f"the agent exited before the test could watch it "
                                 f"(status {self.nsenter.returncode}):\n{out}\n{err}")
        return False

    def alive(self) -> bool:
        return self.nsenter.poll() is None

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would end it; asserts it was still running."""
        assert self.alive(), "the agent finished before the test could kill it:\n" + \
            "\n".join(self.nsenter.communicate())
        signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        self.nsenter.communicate(timeout=30)
        os.close(self.pidfd)
        # nsenter passes the child's death by a signal on as its own.
        assert self.nsenter.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), \
            f"the agent ended with status {self.nsenter.returncode}, not by SIGKILL"


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


# ---------------------------------------------------------------------------------------
# Looking at the node

def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05):
    """Polls `predicate` until it returns something true; fails naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def unit_file(unit: str) -> str:
    return f"/etc/systemd/system/{unit}"


def drop_in_file(unit: str, name: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{name}"


def managed_paths(state: dict) -> list[str]:
    """Every path a state (as given to state_yaml) manages: directories, files, unit files."""
    paths = [d["path"] for d in state.get("directories", ())]
    paths += [f["path"] for f in state.get("files", ())]
    for unit in state.get("units", ()):
        if "content" in unit:
            paths.append(unit_file(unit["name"]))
        paths += [drop_in_file(unit["name"], d["name"]) for d in unit.get("dropIns", ())]
    return paths


def assert_files_hold(node: Node, files) -> None:
    """Each file has exactly its content, its mode (0644 when unset), owner and group."""
    for entry in files:
        path = entry["path"]
        assert node.read_file(path) == file_bytes(entry), f"{path}: wrong content"
        mode, owner, group = mode_owner_group(node, path)
        assert mode == int(entry.get("mode", "0644"), 8), f"{path}: mode {mode:04o}"
        assert owner == entry.get("owner", owner), f"{path}: owner {owner}"
        assert group == entry.get("group", group), f"{path}: group {group}"


def assert_directories_hold(node: Node, directories) -> None:
    for entry in directories:
        path = entry["path"]
        assert node.run(["test", "-d", path], check=False).returncode == 0, \
            f"{path} is not a directory"
        mode, owner, group = mode_owner_group(node, path)
        assert mode == int(entry.get("mode", "0755"), 8), f"{path}: mode {mode:04o}"
        assert owner == entry.get("owner", owner), f"{path}: owner {owner}"
        assert group == entry.get("group", group), f"{path}: group {group}"


def unit_properties(node: Node, unit: str, props=UNIT_PROPERTIES) -> dict[str, str]:
    out = node.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {p: values.get(p, "") for p in props}


def stat_paths(node: Node, paths) -> dict[str, str | None]:
    """path -> "type mode owner group inode mtime ctime size", or None when it does not exist.

    mtime and ctime have nanoseconds: a rewrite or a chmod shows even within one second.
    """
    paths = list(paths)
    script = ('for p; do if [ -e "$p" ] || [ -L "$p" ]; then '
              'stat -c "%n|%F %a %U %G %i %.9Y %.9Z %s" -- "$p"; else echo "$p|"; fi; done')
    out = node.run(["/bin/sh", "-c", script, "sh", *paths]).stdout
    found = {}
    for line in out.splitlines():
        path, _, info = line.rpartition("|")
        found[path] = info or None
    assert set(found) == set(paths), out
    return found


def mode_owner_group(node: Node, path: str) -> tuple[int, str, str]:
    mode, owner, group = node.run(["stat", "-c", "%a %U %G", "--", path]).stdout.split()
    return int(mode, 8), owner, group


def tree_snapshot(node: Node, *roots: str) -> str:
    """Every entry under roots with its type, mode, owner, inode, times and a content hash.

    Two equal snapshots mean nothing under roots was created, removed, rewritten or chmod'ed.
    """
    script = ('find "$@" -xdev -printf "%p %y %m %U:%G %i %s %T@ %C@ %l\\n" | sort; '
              'find "$@" -xdev -type f -print0 | sort -z | xargs -0 -r sha256sum')
    return node.run(["/bin/sh", "-c", script, "sh", *roots]).stdout


def temporary_files(node: Node) -> list[str]:
    """The agent's temporary files anywhere on the node's root filesystem."""
    out = node.run(["find", "/", "-xdev", "-name", TEMPORARY_PREFIX + "[0-9]*"]).stdout
    return out.split()


RELOAD_COUNTER = "/run/nodewarden-test/daemon-reloads"


def count_daemon_reloads(node: Node) -> None:
    """Installs a generator that counts systemd's daemon-reloads (see reload_count)."""
    node.write_file("/etc/systemd/system-generators/nodewarden-test-count-reloads",
                    f"#!/bin/sh\nmkdir -p {Path(RELOAD_COUNTER).parent}\n"
                    f"echo reload >> {RELOAD_COUNTER}\n", mode=0o755)
    node.systemctl("daemon-reload")


def reload_count(node: Node) -> int:
    """How many daemon-reloads systemd has done since count_daemon_reloads().

    systemd runs every generator, synchronously, in each daemon-reload (and only then,
    after boot), so this counts reloads exactly, whoever asked and over whichever bus:
    the agent talks to systemd over its private socket, where a bus monitor sees nothing,
    and the manager's journal lines arrive asynchronously.
    """
    return len(node.read_file(RELOAD_COUNTER).splitlines())


# ---------------------------------------------------------------------------------------
# The agent as a service

def write_agent_config(node: Node, **settings: str) -> None:
    node.write_file(AGENT_CONFIG, "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))


def status_text(node: Node) -> str:
    return node.unit_property(AGENT_UNIT, "StatusText")


def agent_journal(node: Node, *args: str) -> list[dict]:
    """The agent unit's journal entries as JSON objects (journalctl -u ... -o json)."""
    node.run(["journalctl", "--sync"])
    out = node.run(["journalctl", "--no-pager", "-u", AGENT_UNIT, "-o", "json", *args]).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def diagnostic_pattern(path: str) -> re.Pattern:
    """FILE:LINE:COLUMN: FIELD: MESSAGE, the agent's format for an error in a state."""
    return re.compile(rf"^{re.escape(path)}:(\d+):(\d+): ([A-Za-z][\w.\[\]\"]*): (.+)$")
