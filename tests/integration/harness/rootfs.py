"""The Debian bookworm root filesystem every test node boots, built once and cached."""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = (
    # a real init, its bus, and what tests reach for inside a node
    "systemd", "systemd-sysv", "dbus", "procps", "iproute2", "ca-certificates",
    # nodewarden-agent's runtime libraries, so a binary built on the host runs inside
    "libsystemd0", "libcurl4", "libssl3", "libprotobuf32", "libgrpc++1.51", "libgrpc29",
    "libspdlog1.10", "libfmt9", "libyaml-0-2",
    "libprometheus-cpp-core1.0", "libprometheus-cpp-pull1.0", "libcivetweb1",
    # nodewarden-server's, beyond the agent's
    "libsqlite3-0",
    # provisioning a node from user-data (packaging/cloud-init); with no datasource
    # present its generator keeps it out of every other node's boot. debootstrap
    # resolves no virtual packages: python3-cryptography's cffi backend is named here.
    "cloud-init", "python3-cffi-backend",
)
# Units that fail or stall in a container and have nothing to do with what is tested.
MASKED_UNITS = (
    "console-getty.service",  # the console is a pipe to a log file, not a terminal
    "getty@tty1.service",
    "systemd-networkd-wait-online.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "e2scrub_all.timer", "fstrim.timer",
)
HOSTNAME = "nodewarden-test"
STAMP = ".nodewarden-recipe"


def cache_dir() -> Path:
    return Path(os.environ.get("NODEWARDEN_TEST_CACHE", "/var/cache/nodewarden-tests"))


def recipe() -> dict:
    return {"suite": SUITE, "variant": VARIANT, "packages": sorted(PACKAGES),
            "masked": sorted(MASKED_UNITS), "hostname": HOSTNAME}


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()


def ensure() -> Path:
    """Returns the cached rootfs for the current recipe, building it first if needed.

    Each recipe gets its own directory, so a run with an older recipe that still has
    nodes on its tree keeps working while a newer one builds beside it.
    """
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    digest = recipe_hash()
    root = cache / f"rootfs-{SUITE}-{digest[:16]}"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits for our build, then reuses it
        if _stamp(root) == digest:
            return root
        # Under the lock nobody else builds: what is left is an interrupted build.
        for stale in cache.glob(".build-*"):
            remove_tree(stale)
        if root.exists():
            remove_tree(root)
        _build(cache, root, digest, lock.fileno())
    return root


def _stamp(root: Path) -> str | None:
    try:
        return json.loads((root / STAMP).read_text())["hash"]
    except (OSError, ValueError, KeyError):
        return None


def _build(cache: Path, root: Path, digest: str, lock_fd: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    tmp.chmod(0o755)  # it becomes /
    log = cache / f"{root.name}.build.log"
    started = time.monotonic()
    try:
        with open(log, "w") as out:
            result = subprocess.run(
                ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
                 SUITE, str(tmp), mirror()],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                # Holding the lock too, a debootstrap that outlives a killed test run keeps
                # the next run from deleting the tree under it.
                pass_fds=(lock_fd,))
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"debootstrap failed with status {result.returncode} "
                               f"(full log: {log}):\n{tail}")
        _configure(tmp)
        (tmp / STAMP).write_text(json.dumps(
            {"hash": digest, "recipe": recipe(),
             "build_seconds": round(time.monotonic() - started)}, indent=2) + "\n")
        os.rename(tmp, root)
    except BaseException:
        remove_tree(tmp)
        raise


def _configure(root: Path) -> None:
    units = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = units / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "etc/hostname").write_text(HOSTNAME + "\n")
    # An empty machine-id makes every node generate its own on first boot.
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    # Nodes that install packages download what they need; the bootstrap's .debs only cost space.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def mirror() -> str:
    """The host's Debian mirror for SUITE, read from its apt sources at run time."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for stanza in sources.read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ", "\t")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.split()
            if SUITE in fields.get("suites", []) and fields.get("uris"):
                return fields["uris"][0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    raise RuntimeError(f"no apt source for {SUITE} in {sources} or {legacy}")


def remove_tree(path: Path) -> None:
    """Removes a directory tree, first detaching anything mounted inside it.

    An interrupted debootstrap or node can leave proc, sys or an overlay mounted
    there, and rmtree must not descend into those.
    """
    path = Path(path)
    if not path.exists():
        return
    for mount in reversed(mounts_below(path)):
        subprocess.run(["umount", "--lazy", mount], check=False)
    shutil.rmtree(path)


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below path, outermost first, as listed in mountinfo."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found
