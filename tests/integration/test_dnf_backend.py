"""DnfPackageManager against real rpm and dnf 4: tiny noarch packages built
with rpmbuild, a local repository made by createrepo_c, and a throwaway
installroot with its own dnf configuration, driven through
tests/integration/package_backend. Runs on the host; needs no node."""

import shutil
import subprocess
from pathlib import Path

import pytest

DRIVER = "tests/integration/package_backend/package_backend_driver"
TOOLS = ("rpm", "rpmbuild", "createrepo_c", "dnf")

SPEC = """\
Name: %{pname}
Version: %{pver}
Release: %{prel}
Summary: nodewarden test package
License: MIT
BuildArch: noarch
%description
A package for the dnf backend test.
%install
mkdir -p %{buildroot}/usr/share/%{pname}
echo %{pver} > %{buildroot}/usr/share/%{pname}/version
%files
/usr/share/%{pname}/version
"""


def build_repo(work: Path) -> Path:
    repo = work / "repo"
    repo.mkdir()
    (work / "pkg.spec").write_text(SPEC)
    for name, version, release in [("alpha", "1.0", "1"), ("alpha", "1.1", "1"),
                                   ("beta", "2.0", "3")]:
        subprocess.run(
            ["rpmbuild", "-bb", "--quiet",
             "--define", f"_topdir {work / 'rpmbuild'}",
             "--define", f"_rpmdir {repo}",
             "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
             "--define", "__os_install_post %{nil}",
             "--define", f"pname {name}", "--define", f"pver {version}",
             "--define", f"prel {release}",
             str(work / "pkg.spec")],
            check=True, capture_output=True)
    subprocess.run(["createrepo_c", "-q", str(repo)], check=True)
    return repo


class Backend:
    def __init__(self, driver: Path, work: Path, repo: Path):
        self.root = work / "root"
        plugins = self.root / "etc/dnf/plugins"
        plugins.mkdir(parents=True)
        self.locklist = plugins / "versionlock.list"
        self.locklist.write_text("")
        (plugins / "versionlock.conf").write_text(
            f"[main]\nenabled=1\nlocklist={self.locklist}\n")
        self.config = work / "dnf.conf"
        self.config.write_text(
            "[main]\n"
            f"pluginconfpath={plugins}\n"
            f"reposdir={work / 'no-repos'}\n"
            f"cachedir={work / 'cache'}\n"
            "gpgcheck=0\ninstall_weak_deps=0\n"
            "[local]\nname=local\n"
            f"baseurl=file://{repo}\ngpgcheck=0\n")
        self.dnf_args = [f"--config={self.config}", "--releasever=1"]
        self.driver = driver

    def drive(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.driver), "--root", str(self.root)]
        command += [f"--dnf-arg={a}" for a in self.dnf_args] + list(args)
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    def ok(self, *args: str) -> str:
        result = self.drive(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def observe(self, *wants: str) -> dict[str, dict[str, str]]:
        packages, notes = {}, []
        for line in self.ok("observe", *wants).splitlines():
            if line.startswith("note "):
                notes.append(line[5:])
                continue
            name, *fields = line.split(" ")
            packages[name] = dict(f.split("=", 1) for f in fields)
        packages["notes"] = notes
        return packages

    def installed(self) -> list[str]:
        out = subprocess.run(["rpm", "--root", str(self.root), "-qa", "--queryformat",
                              "%{NAME}-%{VERSION}-%{RELEASE}\n"],
                             check=True, capture_output=True, text=True).stdout
        return sorted(out.split())


@pytest.fixture
def backend(build_dir: Path, tmp_path: Path) -> Backend:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-deps", pytrace=False)
    driver = Path(build_dir) / DRIVER
    if not driver.is_file():
        pytest.fail(f"{driver} does not exist: build it first (ninja -C {build_dir})",
                    pytrace=False)
    return Backend(driver, tmp_path, build_repo(tmp_path))


def test_dnf_backend(backend: Backend):
    # Nothing installed: the archive is asked, newest first.
    seen = backend.observe("alpha=1.0-1", "beta", "gamma:absent")
    assert seen["alpha"] == {"installed": "", "held": "0", "queried": "1",
                             "candidate": "1.1-1", "available": "1.1-1,1.0-1"}
    assert seen["beta"]["candidate"] == "2.0-3"
    assert seen["gamma"]["queried"] == "0"
    assert seen["notes"] == []

    # One transaction installs a pinned version and a candidate.
    backend.ok("apply", "install=alpha@1.0-1", "install=beta")
    assert backend.installed() == ["alpha-1.0-1", "beta-2.0-3"]
    seen = backend.observe("alpha=1.0", "beta")
    assert seen["alpha"]["installed"] == "1.0-1"
    assert seen["alpha"]["queried"] == "0"  # "1.0" matches 1.0-1: nothing to ask

    # A hold is a versionlock, and a plain dnf upgrade honours it.
    backend.ok("apply", "hold=alpha")
    assert backend.observe("alpha")["alpha"]["held"] == "1"
    subprocess.run(["dnf", *backend.dnf_args, f"--installroot={backend.root}", "-y", "-q",
                    "upgrade"], check=True, capture_output=True, timeout=60)
    assert backend.installed() == ["alpha-1.0-1", "beta-2.0-3"]

    # The state's own upgrade of a held package goes through and keeps it held.
    backend.ok("apply", "install=alpha@1.1-1")
    assert backend.installed() == ["alpha-1.1-1", "beta-2.0-3"]
    assert "alpha-0:1.1-1" in backend.locklist.read_text()
    assert backend.observe("alpha")["alpha"]["held"] == "1"

    # Unhold and remove together.
    backend.ok("apply", "unhold=alpha", "remove=beta")
    assert backend.installed() == ["alpha-1.1-1"]
    assert backend.observe("alpha")["alpha"]["held"] == "0"

    # A version the archive lacks: refreshed once, then reported with what it has.
    seen = backend.observe("alpha=9.9")
    assert seen["notes"] == ["package lists refreshed: alpha 9.9 was not in them"]
    assert seen["alpha"]["available"] == "1.1-1,1.0-1"
    failed = backend.drive("apply", "install=alpha@9.9", "remove=alpha")
    assert failed.returncode == 1
    assert "dnf shell failed: Error: Unable to find a match: alpha-9.9" in failed.stdout
