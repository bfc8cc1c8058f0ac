"""Self-healing under a real systemd: the agent runs as the node's service and repairs
the units it manages, with backoff, probes, pause and node remediations."""

import http.server
import json
import threading
import time

from agent_helpers import (AGENT_UNIT, agent, agent_journal, state_yaml, status_text,
                           wait_for, write_state)

SLEEPER = "nw-sleeper.service"
SLEEPER_UNIT = {"name": SLEEPER, "state": "running",
                "content": "[Service]\nExecStart=/bin/sleep infinity\n"}


def start_agent(node, state: str, **config) -> None:
    write_state(node, state)
    node.write_file("/etc/nodewarden/agent.yaml", _config_yaml({"driftCheckInterval": "1h",
                                                                **config}))
    node.systemctl("start", AGENT_UNIT)
    assert node.unit_property(AGENT_UNIT, "ActiveState") == "active"


def _config_yaml(settings: dict, indent: int = 0) -> str:
    text = ""
    for key, value in settings.items():
        if isinstance(value, dict):
            text += " " * indent + f"{key}:\n" + _config_yaml(value, indent + 2)
        else:
            text += " " * indent + f"{key}: {json.dumps(value)}\n"
    return text


def status_json(node) -> dict:
    run = agent(node, "status", "--json")
    assert run.returncode == 0, run.describe()
    return json.loads(run.stdout)


def main_pid(node, unit: str) -> int:
    return int(node.unit_property(unit, "MainPID"))


def wait_running(node, unit: str, other_than: int = 0, timeout: float = 10) -> int:
    def running():
        pid = main_pid(node, unit)
        state = node.unit_property(unit, "ActiveState")
        return pid if state == "active" and pid not in (0, other_than) else None
    return wait_for(running, timeout, f"{unit} to run again with a new main process")


def events(node, reason: str | None = None, subject: str | None = None) -> list[dict]:
    return [e for e in status_json(node)["events"]
            if (reason is None or e["reason"] == reason)
            and (subject is None or e["subject"] == subject)]


def condition(node, subject: str, kind: str) -> dict | None:
    for c in status_json(node)["conditions"]:
        if c["subject"] == subject and c["type"] == kind:
            return c
    return None


def kill_main(node, unit: str) -> int:
    pid = main_pid(node, unit)
    assert pid > 0, f"{unit} has no main process"
    node.run(["kill", "-9", str(pid)])
    return pid


# --- restarts ------------------------------------------------------------------------------

def test_a_killed_service_runs_again(agent_node):
    node = agent_node
    start_agent(node, state_yaml(units=[SLEEPER_UNIT]))
    first = wait_running(node, SLEEPER)

    kill_main(node, SLEEPER)

    second = wait_running(node, SLEEPER, other_than=first, timeout=5)
    assert second != first
    restarted = wait_for(lambda: events(node, "Restarted", SLEEPER), 5, "a Restarted event")
    assert "failed (signal)" in restarted[-1]["message"]
    healthy = condition(node, SLEEPER, "Healthy")
    assert healthy and healthy["status"] is True, healthy
    components = {c["unit"]: c for c in status_json(node)["components"]}
    assert components[SLEEPER]["restarts"] == 1
    assert components[SLEEPER]["mainPid"] == second


def test_a_service_that_exits_at_once_backs_off_then_is_crash_looping(agent_node):
    node = agent_node
    crasher = {"name": "nw-crasher.service", "state": "running",
               "content": "[Unit]\nStartLimitIntervalSec=0\n"
                          "[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 3'\n"}
    start_agent(node, state_yaml(units=[crasher]),
                healing={"crashLoopRestarts": 4, "crashLoopWindow": "10m",
                         "restartBackoffCap": "5m"})

    looping = wait_for(lambda: events(node, "CrashLooping", "nw-crasher.service"), 40,
                       "a CrashLooping event")
    assert "restarted 4 times" in looping[0]["message"]
    cond = condition(node, "nw-crasher.service", "CrashLooping")
    assert cond and cond["status"] is True, cond

    # Restarts from the journal, to the microsecond: the first follows the failure at
    # once, then each waits about twice as long as the one before (jitter takes up to
    # a fifth off).
    entries = [e for e in agent_journal(node) if "nw-crasher.service" in e.get("MESSAGE", "")
               and ": Restarted:" in e.get("MESSAGE", "")]
    times = [int(e["__REALTIME_TIMESTAMP"]) / 1e6 for e in entries][:4]
    assert len(times) == 4, [e["MESSAGE"] for e in entries]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Each run lasts 0.2 s before the unit fails again: the backoff is what is left.
    waits = [gap - 0.2 for gap in gaps]
    assert 0.6 <= waits[0] <= 1.5, gaps
    for shorter, longer in zip(waits, waits[1:]):
        assert longer > 1.4 * shorter, gaps
    backoff = events(node, "BackOff", "nw-crasher.service")
    assert backoff, "each delayed restart is announced"


def test_an_http_probe_failing_restarts_after_the_threshold_not_before(agent_node):
    node = agent_node
    health = HealthEndpoint()
    try:
        probed = dict(SLEEPER_UNIT, probe={
            "http": {"url": f"http://127.0.0.1:{health.port}/healthz"},
            "interval": "1s", "timeout": "1s", "initialDelay": "0s", "failureThreshold": 3})
        start_agent(node, state_yaml(units=[probed]))
        first = wait_running(node, SLEEPER)
        wait_for(lambda: health.requests >= 2, 10, "the probe to reach the endpoint")
        assert main_pid(node, SLEEPER) == first

        health.status = 500
        failing_since = health.requests
        wait_for(lambda: health.requests >= failing_since + 2, 10, "two failed checks")
        assert main_pid(node, SLEEPER) == first, "restarted before the third failure"

        second = wait_running(node, SLEEPER, other_than=first, timeout=10)
        assert health.requests >= failing_since + 3
        failed = events(node, "ProbeFailed", SLEEPER)
        assert failed and "HTTP" in failed[-1]["message"] and "500" in failed[-1]["message"]
        restarted = events(node, "Restarted", SLEEPER)
        assert restarted and "probe" in restarted[-1]["message"]

        health.status = 200
        wait_for(lambda: events(node, "ProbeRecovered", SLEEPER), 15, "the probe to recover")
        assert main_pid(node, SLEEPER) == second
        cond = condition(node, SLEEPER, "ProbeFailing")
        assert cond and cond["status"] is False
    finally:
        health.close()


class HealthEndpoint:
    """An HTTP endpoint on the host's loopback, which the nodes share, answering
    `status` and counting requests."""

    def __init__(self):
        self.status = 200
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests += 1
                self.send_response(owner.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- the operator in charge ------------------------------------------------------------------

def test_pause_leaves_everything_alone_and_resume_repairs(agent_node):
    node = agent_node
    start_agent(node, state_yaml(units=[SLEEPER_UNIT]))
    first = wait_running(node, SLEEPER)

    run = agent(node, "pause", "--reason", "kernel debugging", "--for", "1h")
    assert run.returncode == 0, run.describe()
    wait_for(lambda: "Paused" in status_text(node), 5, "STATUS= to say the agent is paused")
    assert "kernel debugging" in status_text(node)

    kill_main(node, SLEEPER)
    wait_for(lambda: node.unit_property(SLEEPER, "ActiveState") == "failed", 5,
             f"{SLEEPER} to fail")
    node.systemctl("stop", "--no-block", SLEEPER)
    time.sleep(2)
    assert node.unit_property(SLEEPER, "ActiveState") in ("failed", "inactive")
    assert not events(node, "Restarted", SLEEPER)
    status = status_json(node)
    assert status["paused"]["node"]["reason"] == "kernel debugging"
    paused = condition(node, "node", "Paused")
    assert paused and paused["status"] is True
    text = agent(node, "status")
    assert "kernel debugging" in text.stdout and "\x1b[" not in text.stdout

    run = agent(node, "resume")
    assert run.returncode == 0, run.describe()
    wait_running(node, SLEEPER, other_than=first, timeout=10)
    assert "Paused" not in status_text(node)
    assert condition(node, "node", "Paused")["status"] is False


def test_an_operator_stop_during_pause_is_left_alone_and_survives_an_agent_restart(agent_node):
    node = agent_node
    start_agent(node, state_yaml(units=[SLEEPER_UNIT]))
    wait_running(node, SLEEPER)
    assert agent(node, "pause", "--reason", "maintenance", "--unit", SLEEPER).returncode == 0

    node.systemctl("stop", SLEEPER)
    node.systemctl("restart", AGENT_UNIT)  # the pause is persisted, the drift left alone
    time.sleep(2)
    assert node.unit_property(SLEEPER, "ActiveState") == "inactive"
    assert status_json(node)["paused"]["units"][SLEEPER]["reason"] == "maintenance"

    assert agent(node, "resume", "--unit", SLEEPER).returncode == 0
    wait_running(node, SLEEPER, timeout=10)


def test_an_agent_restart_leaves_healthy_components_alone(agent_node):
    node = agent_node
    start_agent(node, state_yaml(units=[SLEEPER_UNIT]))
    wait_running(node, SLEEPER)
    before = node.unit_property(SLEEPER, "InvocationID")

    node.systemctl("restart", AGENT_UNIT)
    wait_for(lambda: "In desired state" in status_text(node), 10, "the first converge")

    assert node.unit_property(SLEEPER, "InvocationID") == before


# --- remediations ----------------------------------------------------------------------------

def test_disk_pressure_runs_the_cleanup_and_records_it(agent_node):
    node = agent_node
    node.run(["mkdir", "-p", "/mnt/data"])
    node.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", "/mnt/data"])
    # 6 MiB of old logs and 1 MiB of new ones on an 8 MiB filesystem: 87 % used.
    for i in range(6):
        node.run(["dd", "if=/dev/zero", f"of=/mnt/data/old-{i}.log", "bs=1M", "count=1"])
        node.run(["touch", "-d", "3 days ago", f"/mnt/data/old-{i}.log"])
    node.run(["dd", "if=/dev/zero", "of=/mnt/data/new.log", "bs=1M", "count=1"])
    state = state_yaml(units=[SLEEPER_UNIT]) + (
        "remediations:\n"
        "  diskPressure:\n"
        "    mounts: [/mnt/data]\n"
        "    thresholdPercent: 50\n"
        "    checkInterval: 1s\n"
        "    files:\n"
        "      - pattern: /mnt/data/*.log\n"
        "        olderThan: 1d\n")
    start_agent(node, state)

    cleanup = wait_for(lambda: events(node, "DiskCleanup"), 15, "a DiskCleanup event")
    assert "6 files" in cleanup[0]["message"], cleanup[0]
    assert node.run(["ls", "/mnt/data"]).stdout.split() == ["new.log"]
    wait_for(lambda: (condition(node, "node", "DiskPressure") or {}).get("status") is False, 10,
             "DiskPressure to clear")
    pressure_events = [e for e in status_json(node)["events"] if e["subject"] == "node"]
    assert any(e["reason"] == "DiskCleanup" for e in pressure_events)


def test_status_reads_the_running_agent_only_as_root(agent_node):
    node = agent_node
    start_agent(node, state_yaml(units=[SLEEPER_UNIT]))
    wait_running(node, SLEEPER)
    mode = node.run(["stat", "-c", "%a", "/run/nodewarden", "/run/nodewarden/agent.sock"]).stdout
    assert mode.split() == ["700", "600"]
    denied = node.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       "/usr/bin/nodewarden-agent", "status"], check=False)
    assert denied.returncode == 1
    assert "permission denied" in denied.stderr.lower()
