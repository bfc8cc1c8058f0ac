"""What the cloud-init tests need on the host: the user-data example filled in, cloud-init's
own schema check, the agent's package, and a signed apt repository that serves it.

The repository is what an operator runs for the fleet, made small: a flat repository
(`deb [signed-by=KEYRING] URI ./`) with a Release file signed by a key made for the test,
served over plain HTTP, as Debian's own archive is: trust comes from the signature.
"""

import base64
import hashlib
import http.server
import os
import re
import subprocess
import tempfile
import threading
from email.utils import formatdate
from pathlib import Path

import yaml  # python3-yaml, which cloud-init depends on

import debian_packages
from harness.node import REBOOT_STATUS, REPO_ROOT, Node

USER_DATA = REPO_ROOT / "packaging/cloud-init/user-data.yaml"
PACKAGE = debian_packages.AGENT
SEED = "/var/lib/cloud/seed/nocloud"
# The image's settings, as its builder makes them, not the user-data's: nodes share the
# host's network, which cloud-init must leave alone, and a minbase image has no
# en_US.UTF-8 to make cloud-init's default locale of.
IMAGE_SETTINGS = ("/etc/cloud/cloud.cfg.d/90-nodewarden-test.cfg",
                  "network: {config: disabled}\nlocale: C.UTF-8\n")
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def fill(template: str, **values: str) -> str:
    """The user-data with each ${NAME} replaced, as envsubst does with the names listed.

    Raises ValueError when the configuration (comments aside) keeps a placeholder that
    was not given, so a placeholder added to the example cannot go unfilled here.
    """
    text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    left = set(_PLACEHOLDER.findall(yaml.safe_dump(yaml.safe_load(text))))
    if left:
        raise ValueError(f"placeholders not filled in: {', '.join(sorted(left))}")
    return text


def schema_check(path: Path) -> subprocess.CompletedProcess:
    """cloud-init's own validation of a cloud-config file, as CI runs it."""
    return subprocess.run(["cloud-init", "schema", "--config-file", str(path)],
                          capture_output=True, text=True, timeout=60)


def unknown_keys(text: str) -> set[str]:
    """Top-level keys that are no cloud-config key of cloud-init's schema.

    cloud-init 22.4's schema allows any other key, so a misspelled module
    (`write_file:`) passes `cloud-init schema` and is silently ignored at boot.
    """
    from cloudinit.config.schema import get_schema  # the installed cloud-init's own
    schema = get_schema()
    known = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        known |= set(schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
    return set(yaml.safe_load(text)) - known


def agent_package(build_dir: Path, out_dir: Path) -> tuple[Path, bool]:
    """The agent's .deb, and whether it is the real one.

    The real one is what scripts/package-deb put in dist/ at packaging/debian/changelog's
    version (scripts/test builds it). Until it exists, a stand-in
    made here from the build: the same binary and unit at the paths the package uses,
    depending on the Debian packages of the libraries the binary links. It has no
    maintainer scripts, so it neither enables nor starts the agent; the user-data's
    runcmd does both either way.
    """
    built = debian_packages.deb(PACKAGE, debian_packages.current_version())
    if built.is_file():
        return built, True
    binary = Path(build_dir) / "agent/cmd/nodewarden-agent"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} does not exist: build the agent first")
    tree = out_dir / "stand-in"
    files = {"usr/bin/nodewarden-agent": (binary, 0o755),
             "lib/systemd/system/nodewarden-agent.service":
                 (REPO_ROOT / "systemd/nodewarden-agent.service", 0o644)}
    for path, (source, mode) in files.items():
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        target.chmod(mode)
    arch = debian_packages.architecture()
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN/control").write_text(
        f"Package: {PACKAGE}\nVersion: 0.0~standin\nArchitecture: {arch}\n"
        f"Depends: {', '.join(_library_packages(binary))}\n"
        "Maintainer: nodewarden tests <tests@nodewarden.invalid>\n"
        "Description: nodewarden node agent (test stand-in for the real package)\n")
    deb = out_dir / f"{PACKAGE}_0.0~standin_{arch}.deb"
    # Fast compression: xz, the default, takes most of a minute on the unstripped binary.
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree),
                    str(deb)], check=True, capture_output=True)
    return deb, False


def _library_packages(binary: Path) -> list[str]:
    # The libraries it names itself (NEEDED), as dpkg-shlibdeps reads them, where ldd finds them.
    needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(
        ["objdump", "-p", str(binary)], check=True, capture_output=True, text=True).stdout)
    found_at = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
        ["ldd", str(binary)], check=True, capture_output=True, text=True).stdout, re.M))
    packages = set()
    # Not the dynamic loader: ldd lists it without "=>", and libc6, needed anyway, has it.
    for library in (found_at[name] for name in needed if name in found_at):
        # usrmerge: dpkg knows a library by the path its package ships it at.
        for path in dict.fromkeys([library, os.path.realpath(library)]):
            found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if found.returncode == 0:
                packages.add(found.stdout.split(":", 1)[0])
                break
        else:
            raise RuntimeError(f"no Debian package ships {library}, which {binary} links")
    return sorted(packages)


class AptRepository:
    """A signed flat apt repository of the given packages, served at `url` while entered.

    `keyring` is the public key apt is to trust for it (binary OpenPGP, for signed-by).
    """

    def __init__(self, directory: Path, debs: list[Path]):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.debs = debs
        self.url = ""
        self.keyring = b""
        self._http: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> "AptRepository":
        for deb in self.debs:
            (self.dir / deb.name).write_bytes(deb.read_bytes())
        self._write_index()
        self._sign()
        directory = str(self.dir)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=directory, **kwargs)

            def log_message(self, format, *args):
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/"
        return self

    def __exit__(self, *exc) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def _write_index(self) -> None:
        stanzas = []
        for deb in sorted(self.dir.glob("*.deb")):
            control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True,
                                     capture_output=True, text=True).stdout.strip()
            data = deb.read_bytes()
            stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                           f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
        packages = "\n".join(stanzas).encode()
        (self.dir / "Packages").write_bytes(packages)
        (self.dir / "Release").write_text(
            "Origin: nodewarden\nLabel: nodewarden\n"
            f"Date: {formatdate(usegmt=True)}\n"
            f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")

    def _sign(self) -> None:
        # A key of its own in a throwaway home; its agent is stopped before the home goes.
        with tempfile.TemporaryDirectory(prefix="nodewarden-gpg-") as home:
            env = {**os.environ, "GNUPGHOME": home}

            def gpg(*args: str) -> bytes:
                return subprocess.run(["gpg", "--batch", "--quiet", *args], env=env,
                                      check=True, capture_output=True, timeout=60).stdout

            try:
                gpg("--passphrase", "", "--quick-gen-key", "nodewarden test repository",
                    "ed25519", "sign", "never")
                gpg("--yes", "--clearsign", "--output", str(self.dir / "InRelease"),
                    str(self.dir / "Release"))
                self.keyring = gpg("--export")
            finally:
                subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False,
                               capture_output=True)


def keyring_b64(keyring: bytes) -> str:
    return base64.b64encode(keyring).decode()


def first_boot(node: Node, user_data: str, hostname: str,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Boots `node` again as a new machine given `user_data`, through cloud-init's own
    NoCloud datasource: the seed is put in /var/lib/cloud/seed/nocloud and the node
    rebooted; at boot cloud-init's generator finds it and systemd runs its four stages.
    `timeout` covers the whole boot, cloud-final (apt-get update, install) included.

    Returns `cloud-init status --long` as run once the node is up.
    """
    if node.exists("/var/lib/cloud/instance"):
        raise RuntimeError(f"{node.name}: cloud-init already ran; first_boot needs a new node")
    node.write_file(f"{SEED}/user-data", user_data, mode=0o600)
    node.write_file(f"{SEED}/meta-data",
                    f"instance-id: iid-{node.name}\nlocal-hostname: {hostname}\n")
    node.write_file(*IMAGE_SETTINGS)
    node.run(["systemctl", "reboot"])
    if (status := node.wait_exit()) != REBOOT_STATUS:
        raise RuntimeError(f"{node.name} did not reboot (systemd-nspawn exited {status})")
    node.boot_timeout = timeout
    node.boot()
    return node.run(["cloud-init", "status", "--long"], check=False)
