"""packaging/cloud-init/user-data.yaml: cloud-init accepts it, and a fresh machine that
boots with it becomes an enrolled node converged to its group's state.

The end-to-end test goes through cloud-init's own NoCloud datasource at boot, nothing
run by hand: the node's image has Debian's cloud-init, which its generator keeps off
while there is no datasource; the test puts the filled-in user-data in
/var/lib/cloud/seed/nocloud and reboots the node, and at boot the generator finds the
seed and systemd runs cloud-init's stages (cloud-init-local, cloud-init, cloud-config,
cloud-final) as on a cloud VM's first boot. The agent's package comes from a signed
apt repository on the host, as the user-data installs it for an operator's fleet.
"""

import base64
import shutil
import warnings

import pytest

import cloud_init
from cloud_init import USER_DATA, AptRepository, fill, schema_check, unknown_keys
from harness.node import Node
from harness.server import Server
from test_fleet import applied, group_state

HOSTNAME = "cloud-worker-1"
SAMPLE = {"SERVER": "10.0.0.10:9443", "TOKEN": "abcdef.0123456789abcdef",
          "CA_PIN": "sha256:" + "ab" * 32, "APT_REPO": "http://apt.example.net/nodewarden ./",
          "APT_KEYRING_B64": base64.b64encode(b"key").decode()}


@pytest.fixture(autouse=True, scope="module")
def cloud_init_installed():
    assert shutil.which("cloud-init"), "cloud-init is not installed: run scripts/install-deps"


def test_user_data_is_valid_cloud_config(tmp_path):
    result = schema_check(USER_DATA)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout
    assert unknown_keys(USER_DATA.read_text()) == set()
    # What a node is given, filled in, is valid too.
    filled = tmp_path / "user-data"
    filled.write_text(fill(USER_DATA.read_text(), **SAMPLE))
    result = schema_check(filled)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("old, new, error", [
    # The classic: an octal number where cloud-init wants a string.
    ('permissions: "0600"', "permissions: 0600", "write_files.1.permissions"),
    ("packages:\n  - nodewarden-agent", "packages:\n  nodewarden-agent: latest", "packages:"),
    ("runcmd:\n  - [systemctl", "runcmd: systemctl\nx:\n  - [systemctl", "runcmd:"),
])
def test_schema_check_fails_on_a_broken_copy(tmp_path, old, new, error):
    text = USER_DATA.read_text()
    assert old in text
    broken = tmp_path / "user-data.yaml"
    broken.write_text(text.replace(old, new, 1))
    result = schema_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert error in result.stderr


def test_a_misspelled_module_is_caught_though_cloud_init_schema_passes_it(tmp_path):
    broken = tmp_path / "user-data.yaml"
    broken.write_text(USER_DATA.read_text().replace("\nwrite_files:", "\nwrite_file:", 1))
    assert schema_check(broken).returncode == 0  # cloud-init 22.4 allows any other key
    assert unknown_keys(broken.read_text()) == {"write_file"}


def test_fill_refuses_a_placeholder_left_unfilled():
    with pytest.raises(ValueError, match="CA_PIN"):
        fill(USER_DATA.read_text(), **{k: v for k, v in SAMPLE.items() if k != "CA_PIN"})


@pytest.fixture
def server(build_dir):
    with Server(build_dir) as running:
        yield running


def test_user_data_makes_a_fresh_node_an_enrolled_converged_one(server, node: Node, build_dir,
                                                                 tmp_path):
    state = tmp_path / "workers.yaml"
    state.write_text(group_state("from-cloud-init"))
    server.admin("state", "set", "--group", "workers", str(state))
    token = server.create_token("workers", "--uses", "1")

    # The real package that scripts/package-deb put in dist/; without one, a stand-in
    # made from the build (see cloud_init.agent_package), and the run says so.
    deb, real = cloud_init.agent_package(build_dir, tmp_path)
    if not real:
        warnings.warn(f"dist/ has no {cloud_init.PACKAGE} .deb: the node installed a stand-in "
                      f"made from {build_dir}; run scripts/package-deb to test the real one")
    with AptRepository(tmp_path / "repo", [deb]) as repo:
        user_data = fill(USER_DATA.read_text(), SERVER=server.address, TOKEN=token,
                         CA_PIN=server.ca_pin(), APT_REPO=f"{repo.url} ./",
                         APT_KEYRING_B64=cloud_init.keyring_b64(repo.keyring))
        status = cloud_init.first_boot(node, user_data, HOSTNAME)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "status: done" in status.stdout
        assert "enabled-by-generator" in status.stdout  # started by systemd at boot
        assert "DataSourceNoCloud" in status.stdout, status.stdout

    # The agent came from the repository, found its configuration and started at boot.
    package = node.run(["dpkg-query", "-W", "--showformat=${Status}", cloud_init.PACKAGE])
    assert package.stdout == "install ok installed"
    config = node.run(["stat", "-c", "%a %U %G", "/etc/nodewarden/agent.yaml"]).stdout.split()
    assert config == ["600", "root", "root"]
    assert node.unit_property("nodewarden-agent.service", "UnitFileState") == "enabled"
    assert node.unit_property("nodewarden-agent.service", "ActiveState") == "active"

    # It enrolled under the host name cloud-init gave the machine before it started.
    server.wait_for(f"{HOSTNAME} applied workers@1", lambda: applied(server, HOSTNAME, "workers@1"))
    assert node.read_file("/etc/fleet-marker") == b"from-cloud-init\n"
    assert node.systemctl("is-active", "fleet-demo.service").stdout.strip() == "active"
