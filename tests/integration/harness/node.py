"""A test node: a real systemd booted by systemd-nspawn on an overlay of the cached rootfs."""

import atexit
import ctypes
import fcntl
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

from . import rootfs

log = logging.getLogger("nodewarden.harness")

REPO_ROOT = Path(__file__).resolve().parents[3]
REBOOT_STATUS = 133  # systemd-nspawn's exit status when the container asked for a reboot
# Commands in a node get a clean environment: the host's (pyenv, virtualenvs) means nothing there.
NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8"}
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None).prctl  # looked up now: the forked child must not load anything


class BootError(RuntimeError):
    pass


class CommandError(subprocess.CalledProcessError):
    """A failed command in a node; unlike its base class, it shows what the command printed."""

    def __str__(self) -> str:
        return (f"{super().__str__()}\n--- stdout ---\n{self.stdout or ''}"
                f"--- stderr ---\n{self.stderr or ''}")


class Node:
    """One booted node. Use it as a context manager; it is always cleaned up on exit.

    Its root is an overlay: the shared rootfs below, read-only, and the node's own upper
    layer, which survives reboot() and boot() and goes away with stop().
    """

    def __init__(self, image: Path | None = None, *, private_network: bool = False,
                 shared_apt_cache: bool = False, boot_timeout: float = 60.0):
        self.image = Path(image) if image else rootfs.ensure()
        self.name = f"nw-{secrets.token_hex(4)}"  # unique across concurrent runs too
        self.private_network = private_network
        # Nodes that install packages share one download cache and one set of package
        # lists on the host: each .deb is fetched once per machine, not once per test.
        self.shared_apt_cache = shared_apt_cache
        self.boot_timeout = boot_timeout
        self.dir = rootfs.cache_dir() / "nodes" / self.name
        self.merged = self.dir / "merged"
        self.console = self.dir / "console.log"
        self.leader: int | None = None  # the container's PID 1, as the host sees it
        self._proc: subprocess.Popen | None = None
        self._leader_fd: int | None = None  # pidfd: signals reach the leader, never a reused PID
        self._cgroups: list[Path] = []
        self._dir_fd: int | None = None  # locked while this process or its nspawn uses the node

    def __enter__(self) -> "Node":
        try:
            self.boot()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The systemd-nspawn process."""
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def boot(self) -> None:
        """Boots the node, on its existing upper layer if it has one, and waits until it is up.

        Boot it from a thread that outlives it: the container is halted when the thread
        that booted it ends (nspawn's parent-death signal follows that thread).
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        deadline = time.monotonic() + self.boot_timeout
        if self._dir_fd is None:
            self._create()
        # nspawn --keep-unit hands its own cgroup to the container's systemd; with no
        # systemd on the host that would be the root cgroup, shared by every node.
        self._cgroups = [base / self.name for base in _cgroup_bases()]
        for cgroup in self._cgroups:
            cgroup.mkdir(exist_ok=True)
        with open(self.console, "ab") as console:
            self._proc = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "--settings=no", "--register=no", "--keep-unit",
                 f"--machine={self.name}", f"--directory={self.merged}",
                 # A pipe console would lose PID 1's output; a pty forwarded to the log keeps it.
                 "--console=read-only", "--setenv=SYSTEMD_COLORS=0",
                 *self._network_args(), *self._bind_args(), "--boot",
                 "systemd.show_status=yes"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                # Nodes get cgroup v2 alone, like current Kubernetes nodes, even on a host
                # that mixes v1 and v2.
                env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
                preexec_fn=lambda: _enter_as_child(self._cgroups), pass_fds=(self._dir_fd,))
        self._find_leader(deadline)
        self._wait_booted(deadline)

    def _network_args(self) -> list[str]:
        # The place for a node's own network namespace with a veth pair
        # (--network-namespace-path=) when tests need separate addresses.
        return ["--private-network"] if self.private_network else []

    def _bind_args(self) -> list[str]:
        if not self.shared_apt_cache:
            return []
        args = []
        for node_path in ("/var/cache/apt/archives", "/var/lib/apt/lists"):
            host = rootfs.cache_dir() / "apt" / node_path.strip("/").replace("/", "-")
            (host / "partial").mkdir(parents=True, exist_ok=True)
            if node_path == "/var/lib/apt/lists" and not any(host.glob("*_Packages")):
                # Start from the lists the rootfs was built with.
                subprocess.run(["cp", "-a", f"{self.image}{node_path}/.", str(host)], check=True)
            args.append(f"--bind={host}:{node_path}")
        return args

    def _create(self) -> None:
        _track(self)
        nodes = self.dir.parent
        nodes.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(nodes)
        # Locked before it has its name, so that no other run ever sees it unlocked.
        new = nodes / f".new-{self.name}"
        new.mkdir()
        fd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        new.rename(self.dir)
        self._dir_fd = fd
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir()
        result = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.image},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
             str(self.merged)], capture_output=True, text=True)
        if result.returncode != 0:
            raise BootError(f"{self.name}: mounting its overlay failed: {result.stderr.strip()}")
        # Each node is its own machine, by name too (its machine-id comes at first boot).
        (self.merged / "etc/hostname").write_text(self.name + "\n")

    def _find_leader(self, deadline: float) -> None:
        # nspawn forks the container's PID 1 in a new PID namespace and stays its parent.
        own_ns = os.readlink("/proc/self/ns/pid")
        while time.monotonic() < deadline:
            for child in _children(self._proc.pid):
                try:
                    if os.readlink(f"/proc/{child}/ns/pid") != own_ns:
                        self._leader_fd = os.pidfd_open(child)
                        self.leader = child
                        return
                except (FileNotFoundError, ProcessLookupError):
                    pass  # the short-lived helper nspawn forks first
            if not self.running:
                break
            time.sleep(0.01)
        raise self._boot_error()

    def _wait_booted(self, deadline: float) -> None:
        while self.running:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                state = self.run(["systemctl", "is-system-running", "--wait"],
                                 check=False, timeout=left).stdout.strip()
            except subprocess.TimeoutExpired:
                break
            if state == "running":
                return
            if state == "degraded":
                failed = self.systemctl("--failed", "--no-legend", check=False).stdout
                log.warning("%s booted degraded; failed units:\n%s", self.name, failed)
                return
            time.sleep(0.05)  # systemd is not listening yet
        raise self._boot_error()

    def _boot_error(self) -> BootError:
        if self.running:
            return BootError(self._failure(f"not booted within {self.boot_timeout:g} s"))
        return BootError(self._failure(
            f"systemd-nspawn exited with status {self._proc.returncode} while booting"))

    def _failure(self, what: str) -> str:
        lines = [line for line in self.console.read_text(errors="replace").splitlines()
                 if line.strip()][-40:]
        return f"{self.name}: {what}; its console said:\n" + "\n".join(lines)

    def run(self, cmd: list[str] | str, *, check: bool = True, input: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Runs a command inside the node, in all its namespaces; a string goes to /bin/sh -c."""
        return self._exec(cmd, check=check, input=input, timeout=timeout, text=True)

    def _exec(self, cmd: list[str] | str, *, check: bool, input, timeout: float,
              text: bool) -> subprocess.CompletedProcess:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        result = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", *argv],
                                input=input, capture_output=True, text=text,
                                timeout=timeout, env=NODE_ENV)
        if check and result.returncode != 0:
            raise CommandError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Writes a file inside the node atomically, creating its directory."""
        if isinstance(data, str):
            data = data.encode()
        # Inside, not through the merged dir: paths may cross the node's own mounts
        # (/run, /tmp) or absolute symlinks, which only resolve right from within.
        self._exec(['/bin/sh', '-ec', 'mkdir -p "$(dirname "$1")"; cat > "$1.tmp"; '
                    'chmod "$2" "$1.tmp"; mv -f "$1.tmp" "$1"', "sh", path, f"{mode:o}"],
                   check=True, input=data, timeout=60, text=False)

    def read_file(self, path: str) -> bytes:
        return self._exec(["cat", "--", path], check=True, input=None, timeout=60,
                          text=False).stdout

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def host_path(self, path: str) -> Path:
        """The host's view of a path on the node's root filesystem (not its /run or /tmp).

        Valid while the node is stopped too, between wait_exit() and boot().
        """
        return self.merged / Path(path).relative_to("/")

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["systemctl", *args], check=check)

    def unit_cgroup(self, unit: str) -> Path:
        """A unit's cgroup directory as the host sees it, for measuring from the host.

        The node's PID 1 sits in init.scope at the top of the node's tree in the
        unified (cgroup v2) hierarchy, which a hybrid host mounts at unified/.
        """
        lines = Path(f"/proc/{self.leader}/cgroup").read_text().splitlines()
        path = next(line[3:] for line in lines if line.startswith("0::"))
        mount = Path("/sys/fs/cgroup/unified")
        if not (mount / "cgroup.procs").exists():
            mount = Path("/sys/fs/cgroup")
        return (mount / path.lstrip("/")).parent / "system.slice" / unit

    def unit_host_pids(self, unit: str) -> list[int]:
        """The unit's processes by their host PIDs; [] when it has none."""
        try:
            return [int(pid) for pid in (self.unit_cgroup(unit) / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def unit_property(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "--property", prop, "--value", unit).stdout.strip()

    def install_agent(self, build_dir: Path) -> None:
        """Installs the agent built in build_dir and the repository's unit file."""
        binary = Path(build_dir) / "agent/cmd/nodewarden-agent"
        if not binary.is_file():
            raise FileNotFoundError(
                f"{binary} does not exist: build the agent first "
                f"(meson setup {build_dir} && meson compile -C {build_dir})")
        self.write_file("/usr/bin/nodewarden-agent", binary.read_bytes(), 0o755)
        unit = REPO_ROOT / "systemd/nodewarden-agent.service"
        if unit.is_file():
            self.write_file("/etc/systemd/system/nodewarden-agent.service", unit.read_text())
        self.systemctl("daemon-reload")

    def apt_install(self, *packages: str, timeout: float = 300) -> None:
        """Installs Debian packages in the node from the archive, its lists refreshed first.

        Waits while another node holds a lock of the shared apt cache, where apt gives up
        at once ("Could not get lock").
        """
        for arguments in (["update", "-q"],
                          ["install", "-y", "-q", "--no-install-recommends", *packages]):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *arguments],
                             timeout=timeout)
                    break
                except CommandError as e:
                    if "Could not get lock" not in (e.stderr or "") or \
                            time.monotonic() > deadline:
                        raise
                time.sleep(1)

    def install_server(self, build_dir: Path) -> None:
        """Installs the server built in build_dir and the repository's unit file."""
        binary = Path(build_dir) / "server/cmd/nodewarden-server"
        if not binary.is_file():
            raise FileNotFoundError(f"{binary} does not exist: build the server first")
        self.write_file("/usr/bin/nodewarden-server", binary.read_bytes(), 0o755)
        self.write_file("/etc/systemd/system/nodewarden-server.service",
                        (REPO_ROOT / "systemd/nodewarden-server.service").read_text())
        self.systemctl("daemon-reload")

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Waits for the node to stop by itself; returns nspawn's status (REBOOT_STATUS: reboot)."""
        try:
            status = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(self._failure(f"still running after {timeout:g} s")) from None
        self._reap()
        return status

    def poweroff(self, timeout: float = 30.0) -> int | None:
        """Shuts the node down cleanly, or kills it after timeout; keeps its upper layer.

        Returns nspawn's exit status, or None if the node was never booted.
        """
        if self._proc is None:
            return None
        if self.running:
            # SIGRTMIN+4 asks systemd for a poweroff, as `systemctl poweroff` would. Before
            # the leader is known, SIGTERM makes nspawn ask the container to halt.
            self._signal(signal.SIGRTMIN + 4, signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not power off within %g s; killing it", self.name, timeout)
                # Killing the container's PID 1 kills everything in it; nspawn then exits.
                self._signal(signal.SIGKILL, signal.SIGKILL)
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
        return self.wait_exit(10)

    def _signal(self, to_leader: int, to_nspawn: int) -> None:
        try:
            if self._leader_fd is not None:
                signal.pidfd_send_signal(self._leader_fd, to_leader)
            else:
                self._proc.send_signal(to_nspawn)
        except ProcessLookupError:
            pass  # already gone

    def stop(self) -> None:
        """Powers the node off and removes everything it left on the host."""
        try:
            self.poweroff()
        finally:
            self._reap()
            if self._dir_fd is not None:
                rootfs.remove_tree(self.dir)
                os.close(self._dir_fd)
                self._dir_fd = None
            _untrack(self)

    def _reap(self) -> None:
        if self._leader_fd is not None:
            os.close(self._leader_fd)
        self.leader = self._leader_fd = None
        for cgroup in self._cgroups:
            _remove_cgroup(cgroup)
        self._cgroups = []


def _remove_abandoned(nodes: Path) -> None:
    """Removes what runs that were killed outright left: nodes whose lock nobody holds."""
    for node_dir in nodes.iterdir():
        if node_dir.name.startswith("."):
            continue
        try:
            fd = os.open(node_dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # another run removed it meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            log.warning("removing %s, left behind by a killed run", node_dir)
            rootfs.remove_tree(node_dir)
            for base in _cgroup_bases():
                _remove_cgroup(base / node_dir.name)
        except BlockingIOError:
            pass  # in use
        finally:
            os.close(fd)


def _remove_cgroup(cgroup: Path) -> None:
    # The container's systemd leaves its (now empty) cgroups behind; innermost first.
    for sub, _, _ in sorted(os.walk(cgroup), key=lambda w: -len(w[0])):
        try:
            os.rmdir(sub)
        except OSError as e:
            log.warning("removing cgroup %s: %s, ignoring", sub, e)


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return children


def _cgroup_bases() -> list[Path]:
    """Our own cgroup in each hierarchy nspawn and systemd manage: name=systemd and cgroup2."""
    mounts = {}
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            if fstype == "cgroup2":
                mounts[""] = fields[4]
            elif fstype == "cgroup" and "name=systemd" in options:
                mounts["name=systemd"] = fields[4]
    bases = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers in mounts:
            bases.append(Path(mounts[controllers]) / path.lstrip("/"))
    return bases


def _enter_as_child(cgroups: list[Path]) -> None:
    """Runs in nspawn's process before exec."""
    for cgroup in cgroups:
        (cgroup / "cgroup.procs").write_text("0")
    # If the test run is killed outright, nspawn gets SIGTERM and halts its container.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# Nodes with something on the host, so an interrupted run still stops and unmounts them.
_live: set[Node] = set()


def _track(node: Node) -> None:
    if not _live:
        _install_interrupt_handlers()
    _live.add(node)


def _untrack(node: Node) -> None:
    _live.discard(node)


@atexit.register
def _stop_all() -> None:
    for node in list(_live):
        try:
            node.stop()
        except Exception:
            log.exception("cleaning up %s failed", node.name)


def _install_interrupt_handlers() -> None:
    # SIGTERM and SIGHUP end the run like Ctrl-C does, so pytest tears its fixtures
    # down and atexit runs; a handler someone else installed is left alone.
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
