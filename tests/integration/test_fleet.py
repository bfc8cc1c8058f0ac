"""The control plane end to end: a real nodewarden-server on the host, agents in
node containers under systemd, real TLS and gRPC between them."""

import json
import time
from pathlib import Path

import pytest

from harness.node import Node
from harness.server import Server

AGENT_UNIT = "nodewarden-agent.service"


def group_state(marker: str) -> str:
    return f"""apiVersion: nodewarden.io/v1
kind: NodeState
files:
  - path: /etc/fleet-marker
    content: "{marker}\\n"
units:
  - name: fleet-demo.service
    state: running
    content: |
      [Service]
      ExecStart=/bin/sleep infinity
"""


@pytest.fixture
def server(build_dir: Path):
    with Server(build_dir) as running:
        yield running


def enroll_node(node: Node, build_dir: Path, server: Server, token: str, name: str,
                pin: str | None = None) -> None:
    node.install_agent(build_dir)
    node.write_file("/etc/nodewarden/agent.yaml",
                    f"server: {server.address}\n"
                    f"bootstrapToken: {token}\n"
                    f"caCertHash: {pin or server.ca_pin()}\n"
                    f"nodeName: {name}\n"
                    "usageInterval: 5s\n")
    node.systemctl("start", AGENT_UNIT)


def applied(server: Server, name: str, version: str):
    node = server.nodes().get(name)
    return node if node and node.get("appliedVersion") == version and \
        node.get("lastResult") == "ok" else None


def journal(node: Node) -> str:
    return node.run(["journalctl", "-u", AGENT_UNIT, "--no-pager", "-o", "cat"],
                    check=False).stdout


def test_node_enrolls_receives_its_state_converges_and_reports(server, node, build_dir, tmp_path):
    state = tmp_path / "workers.yaml"
    state.write_text(group_state("one"))
    server.admin("state", "set", "--group", "workers", str(state))
    token = server.create_token("workers", "--uses", "3")

    enroll_node(node, build_dir, server, token, "worker-1")
    server.wait_for("worker-1 applied workers@1", lambda: applied(server, "worker-1", "workers@1"))

    assert node.read_file("/etc/fleet-marker") == b"one\n"
    assert node.systemctl("is-active", "fleet-demo.service").stdout.strip() == "active"
    # The key never left the node and only root can read it.
    assert node.run(["stat", "-c", "%a", "/var/lib/nodewarden/pki/node.key"]).stdout.strip() == "600"
    shown = server.admin_json("nodes", "show", "worker-1")
    assert shown["group"] == "workers"
    assert shown["facts"]["machineId"]
    assert shown["lastReport"]["result"] == "ok"
    # Usage arrives at its interval.
    server.wait_for("usage of worker-1",
                    lambda: server.admin_json("nodes", "show", "worker-1").get("usage"))
    listed = server.admin("nodes", "list").stdout
    assert "worker-1" in listed and "workers@1" in listed

    # A new revision is pushed to the connected node and converged.
    state.write_text(group_state("two"))
    out = server.admin("state", "set", "--group", "workers", str(state)).stdout
    assert "sent to 1 connected node" in out
    server.wait_for("worker-1 applied workers@2", lambda: applied(server, "worker-1", "workers@2"))
    assert node.read_file("/etc/fleet-marker") == b"two\n"


def test_invalid_state_is_refused_with_its_position_and_changes_nothing(server, tmp_path):
    state = tmp_path / "broken.yaml"
    state.write_text("apiVersion: nodewarden.io/v1\nkind: NodeState\nunits:\n  - nmae: x\n")
    result = server.admin("state", "set", "--group", "workers", str(state), check=False)
    assert result.returncode == 1
    assert f"{state}:4:5" in result.stderr
    assert "nothing changed" in result.stderr
    assert server.admin_json("state", "show").get("states", []) == []


def test_agent_keeps_enforcing_the_cached_state_while_the_server_is_down(
        server, node, build_dir, tmp_path):
    state = tmp_path / "workers.yaml"
    state.write_text(group_state("cached"))
    server.admin("state", "set", "--group", "workers", str(state))
    enroll_node(node, build_dir, server, server.create_token("workers"), "worker-1")
    server.wait_for("worker-1 applied workers@1", lambda: applied(server, "worker-1", "workers@1"))

    server.stop()
    stopped_at = time.time()
    # Drift while the server is away is repaired from the cache.
    node.run(["rm", "/etc/fleet-marker"])
    node.systemctl("restart", AGENT_UNIT)
    deadline = time.monotonic() + 60
    while not node.exists("/etc/fleet-marker"):
        assert time.monotonic() < deadline, journal(node)
        time.sleep(0.3)
    assert node.read_file("/etc/fleet-marker") == b"cached\n"

    # Reports made meanwhile were spooled and arrive once the server is back.
    server.start()
    server.wait_for("worker-1 reconnected", lambda: server.nodes()["worker-1"].get("connected"))
    def report_made_while_away():
        report = server.admin_json("nodes", "show", "worker-1").get("lastReport", {})
        return int(report.get("finishedAtUs", 0)) / 1e6 > stopped_at
    server.wait_for("the report spooled while the server was down", report_made_while_away)


def test_expired_token_is_refused(server, node, build_dir):
    token = server.create_token("workers", "--ttl", "1s")
    time.sleep(2)
    enroll_node(node, build_dir, server, token, "late-node")
    deadline = time.monotonic() + 30
    while "no valid bootstrap token" not in journal(node):
        assert time.monotonic() < deadline, journal(node)
        time.sleep(0.5)
    assert "late-node" not in server.nodes()


def test_ca_pin_mismatch_is_refused(server, node, build_dir):
    token = server.create_token("workers")
    enroll_node(node, build_dir, server, token, "pinned", pin="sha256:" + "0" * 64)
    deadline = time.monotonic() + 30
    while "not the pinned" not in journal(node):
        assert time.monotonic() < deadline, journal(node)
        time.sleep(0.5)
    assert "pinned" not in server.nodes()


def test_admin_socket_refuses_a_non_root_user(server):
    result = server.admin("nodes", "list", user="65534", check=False)
    assert result.returncode == 1
    assert "root only" in result.stderr or "ermission denied" in result.stderr


def test_server_runs_under_its_hardened_unit_and_a_node_enrolls_with_it(node, build_dir, tmp_path):
    """The server as an operator runs it: its unit file under systemd, sandboxed, with its
    own dynamic user; the agent in the same container enrolls with it."""
    from harness.server import free_port
    port = free_port()
    node.install_server(build_dir)
    node.write_file("/etc/nodewarden/server.yaml", f"listen: 127.0.0.1:{port}\n")
    node.systemctl("start", "nodewarden-server.service")
    assert node.systemctl("is-active", "nodewarden-server.service").stdout.strip() == "active"
    # State and socket are the server's alone.
    assert node.run(["stat", "-c", "%a", "/var/lib/private/nodewarden-server"]).stdout.strip() \
        == "700"

    cli = "/usr/bin/nodewarden-server"
    node.write_file("/tmp/workers.yaml", group_state("packaged"))
    node.run([cli, "state", "set", "--group", "workers", "/tmp/workers.yaml"])
    token = node.run([cli, "token", "create", "--group", "workers"]).stdout.strip()
    pin = next(line.split("CA pin ")[1].split(")")[0] for line in node.run(
        ["journalctl", "-u", "nodewarden-server.service", "-o", "cat", "--no-pager"]).stdout
        .splitlines() if "CA pin " in line)

    node.install_agent(build_dir)
    node.write_file("/etc/nodewarden/agent.yaml",
                    f"server: 127.0.0.1:{port}\nbootstrapToken: {token}\n"
                    f"caCertHash: {pin}\nnodeName: solo\n")
    node.systemctl("start", AGENT_UNIT)
    deadline = time.monotonic() + 60
    while True:
        nodes = json.loads(node.run([cli, "nodes", "list", "--json"]).stdout).get("nodes", [])
        if nodes and nodes[0].get("appliedVersion") == "workers@1":
            break
        assert time.monotonic() < deadline, journal(node) + node.run(
            ["journalctl", "-u", "nodewarden-server.service", "--no-pager"]).stdout
        time.sleep(0.3)
    assert node.read_file("/etc/fleet-marker") == b"packaged\n"


def test_three_nodes_converge_a_pushed_state_and_survive_a_server_restart(
        server, rootfs, build_dir, tmp_path):
    state = tmp_path / "workers.yaml"
    state.write_text(group_state("first"))
    server.admin("state", "set", "--group", "workers", str(state))
    token = server.create_token("workers", "--uses", "3")
    names = ["worker-a", "worker-b", "worker-c"]
    with Node(rootfs) as a, Node(rootfs) as b, Node(rootfs) as c:
        nodes = dict(zip(names, (a, b, c)))
        for name, node in nodes.items():
            enroll_node(node, build_dir, server, token, name)
        for name in names:
            server.wait_for(f"{name} applied workers@1", lambda n=name: applied(server, n, "workers@1"))

        # One `state set` reaches all three, and each converges.
        state.write_text(group_state("second"))
        out = server.admin("state", "set", "--group", "workers", str(state)).stdout
        assert "sent to 3 connected nodes" in out
        for name, node in nodes.items():
            server.wait_for(f"{name} applied workers@2", lambda n=name: applied(server, n, "workers@2"))
            assert node.read_file("/etc/fleet-marker") == b"second\n"

        # The server restarts: every stream comes back, and what the nodes reported in
        # between (a converge each, on SIGHUP) arrives, none of it dropped.
        server.stop()
        stopped_at = time.time()
        for node in nodes.values():
            node.systemctl("reload", AGENT_UNIT)
        time.sleep(1)
        server.start()
        for name in names:
            server.wait_for(f"{name} back", lambda n=name: server.nodes()[n].get("connected"))

            def reported_after_stop(n=name):
                report = server.admin_json("nodes", "show", n).get("lastReport", {})
                return int(report.get("finishedAtUs", 0)) / 1e6 > stopped_at
            server.wait_for(f"{name}'s report from the outage", reported_after_stop)
            assert int(server.nodes()[name].get("dropped", 0)) == 0

        status = a.run(["nodewarden-agent", "status"]).stdout
        assert "Server: connected to " + server.address in status
        assert "enforcing workers@2" in status


class Webhook:
    """An HTTP endpoint on the host's loopback that keeps what is POSTed to it."""

    def __init__(self):
        import http.server
        import threading
        self.received: list[dict] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_limits_raise_alerts_listed_and_posted_to_the_webhook(node, build_dir, tmp_path):
    webhook = Webhook()
    extra = ("alerting:\n"
             "  checkInterval: 1s\n"
             f"  webhookUrl: {webhook.url}\n"
             "  limits: {diskPercent: 1, notSeenFor: 4s}\n")
    try:
        with Server(build_dir, config_extra=extra) as server:
            state = tmp_path / "workers.yaml"
            state.write_text(group_state("alerts") + """  - name: crasher.service
    state: running
    content: |
      [Service]
      ExecStart=/bin/false
""")
            server.admin("state", "set", "--group", "workers", str(state))
            enroll_node(node, build_dir, server, server.create_token("workers"), "alerted")
            node.write_file("/etc/nodewarden/agent.yaml",
                            node.read_file("/etc/nodewarden/agent.yaml").decode() +
                            "healing: {crashLoopRestarts: 2}\n")
            node.systemctl("restart", AGENT_UNIT)

            def kinds(all_=False):
                args = ("alerts", "list", "--all") if all_ else ("alerts", "list")
                return {(a["node"], a["kind"]) for a in server.admin_json(*args).get("alerts", [])}

            # The root disk is over 1 % and crasher.service keeps failing.
            server.wait_for("DiskUsage and CrashLooping alerts", lambda: {
                ("alerted", "DiskUsage"), ("alerted", "CrashLooping")} <= kinds())
            listed = server.admin("alerts", "list").stdout
            assert "crasher.service is crash-looping" in listed
            assert "% full (limit 1%)" in listed

            # The node goes quiet: NotSeen once the limit has passed; back, it resolves.
            node.systemctl("stop", AGENT_UNIT)
            server.wait_for("a NotSeen alert", lambda: ("alerted", "NotSeen") in kinds())
            node.systemctl("start", AGENT_UNIT)
            server.wait_for("NotSeen resolved", lambda: ("alerted", "NotSeen") not in kinds())
            assert ("alerted", "NotSeen") in kinds(all_=True)

            posted = {(a["kind"], a["status"]) for a in webhook.received}
            assert {("DiskUsage", "firing"), ("CrashLooping", "firing"), ("NotSeen", "firing"),
                    ("NotSeen", "resolved")} <= posted
            assert all(a["node"] == "alerted" and a["group"] == "workers"
                       for a in webhook.received)
    finally:
        webhook.close()
