"""examples/worker-node.yaml applied to a fresh node, as the example is written, except
that kubelet and kubeadm come from a local HTTPS server standing in for the release site."""

from pathlib import Path

from agent_helpers import apply, write_state
from harness.https_server import HttpsServer, serve_artifacts, stand_in
from harness.node import REPO_ROOT, Node

EXAMPLE = REPO_ROOT / "examples/worker-node.yaml"
CA = "/etc/nodewarden/mirror-ca.pem"


def served_locally(example: str, server: HttpsServer) -> str:
    text = serve_artifacts(example, server, CA)
    assert text.count(server.url("")) == 2, "the example should fetch kubelet and kubeadm"
    return text


def test_worker_node_example_converges_then_is_a_no_op(rootfs: Path, build_dir: Path) -> None:
    with Node(rootfs, shared_apt_cache=True) as node, HttpsServer() as server:
        node.install_agent(build_dir)
        node.write_file(CA, server.ca_file.read_text())
        write_state(node, served_locally(EXAMPLE.read_text(), server))

        run = apply(node, expect=2, timeout=900)
        assert run.report["failed"] == 0, run.describe()

        # containerd: installed from the archive, held, configured, running, answering.
        status = node.run(["dpkg-query", "-W", "--showformat=${Status}", "containerd"]).stdout
        assert status == "hold ok installed"
        assert "containerd" in node.run(["apt-mark", "showhold"]).stdout.split()
        assert "SystemdCgroup = true" in node.read_file("/etc/containerd/config.toml").decode()
        assert node.systemctl("is-active", "containerd.service").stdout.strip() == "active"
        assert "Server:" in node.run(["ctr", "version"]).stdout
        # Its package started it on the package's own config.toml; the state's came after,
        # so it was restarted to read it.
        assert ("unit containerd.service", "restart") in run.actions(), run.describe()

        # kubelet: binary, configuration and unit with its drop-in, enabled.
        assert node.read_file("/usr/local/bin/kubelet") == stand_in("kubelet")
        assert node.run(["stat", "-c", "%a", "/usr/local/bin/kubelet"]).stdout.strip() == "755"
        assert b"KubeletConfiguration" in node.read_file("/etc/kubernetes/kubelet-config.yaml")
        assert node.systemctl("is-enabled", "kubelet.service").stdout.strip() == "enabled"
        dropin = node.systemctl("cat", "kubelet.service").stdout
        assert "--config=/etc/kubernetes/kubelet-config.yaml" in dropin
        assert node.read_file("/etc/crictl.yaml").startswith(b"runtime-endpoint:")

        # Kernel prerequisites: persisted, and applied or said to be impossible here.
        assert node.read_file("/etc/modules-load.d/nodewarden.conf").decode().split(
            "\n")[-3:] == ["br_netfilter", "overlay", ""]
        sysctl_conf = node.read_file("/etc/sysctl.d/90-nodewarden.conf").decode()
        assert "net.ipv4.ip_forward = 1" in sysctl_conf
        outcomes = {c["resource"]: c for c in run.report["changes"]}
        for name, expected in (("sysctl net.ipv4.ip_forward", "1"),):
            if name in outcomes and outcomes[name]["outcome"] == "n/a":
                assert outcomes[name]["error"], outcomes[name]
            else:
                value = node.read_file("/proc/sys/net/ipv4/ip_forward").decode().strip()
                assert value == expected
        module = outcomes.get("kernel module br_netfilter")
        assert (module and module["outcome"] in ("ok", "n/a")) or node.exists(
            "/sys/module/br_netfilter"), run.describe()

        # The same apply again: nothing to change.
        again = apply(node, expect=0, timeout=300)
        assert again.report["changed"] == 0 and again.report["jobs"] == 0, again.describe()
        assert all(c["outcome"] == "n/a" for c in again.report["changes"]), again.describe()


def test_control_plane_example_is_valid_and_plans(rootfs: Path, build_dir: Path) -> None:
    example = (REPO_ROOT / "examples/control-plane-node.yaml").read_text()
    with Node(rootfs, shared_apt_cache=True) as node, HttpsServer() as server:
        node.install_agent(build_dir)
        node.write_file(CA, server.ca_file.read_text())
        write_state(node, served_locally(example, server))
        valid = node.run(["nodewarden-agent", "validate", "/etc/nodewarden/node.yaml"])
        assert "valid (" in valid.stdout
        plan = apply(node, "/etc/nodewarden/node.yaml", "--dry-run", expect=2, timeout=300)
        planned = {change["resource"] for change in plan.report["changes"]}
        assert {"package containerd", "artifact /usr/local/bin/kubeadm",
                "directory /var/lib/etcd"} <= planned, plan.describe()
        assert not node.exists("/var/lib/etcd"), "a dry run changed the node"
