"""Small Debian packages and a flat apt repository of them, made on the host.

Real Debian packages (containerd) come from the archive; these stand in where a test
needs what the archive doesn't offer: two versions of one package, to upgrade between.
"""

import hashlib
import subprocess
import tempfile
from pathlib import Path


def build_deb(out_dir: Path, name: str, version: str, files: dict[str, str],
              description: str = "nodewarden test package") -> Path:
    """A binary package (Architecture: all) holding `files` (path in the node → text)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        for path, text in files.items():
            target = tree / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(0o755 if "/bin/" in path else 0o644)
        control = tree / "DEBIAN" / "control"
        control.parent.mkdir(parents=True, exist_ok=True)
        control.write_text(f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                           f"Maintainer: nodewarden tests <tests@nodewarden.invalid>\n"
                           f"Description: {description}\n")
        deb = out_dir / f"{name}_{version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                       check=True, capture_output=True)
    return deb


def write_index(repo: Path) -> None:
    """Writes the Packages index of a flat repository (`deb [trusted=yes] file:REPO ./`)."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True,
                                 capture_output=True, text=True).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    (repo / "Packages").write_text("\n".join(stanzas))
