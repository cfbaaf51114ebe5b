"""Write backendai_hub_session's wheel with the standard library only (the image build is air-gapped).

    python session/make_wheel.py OUT_DIR      -> OUT_DIR/backendai_hub_session-<version>-py3-none-any.whl

The same files as ``pip wheel session/`` (setuptools): the package, and the server config that
enables the extension, under the wheel's data directory.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "backendai_hub_session"
# reproducible: the image build caches on the wheel's bytes
EPOCH = (2020, 2, 2, 0, 0, 0)


def _version() -> str:
    m = re.search(r'^__version__ = "([^"]+)"', (HERE / NAME / "__init__.py").read_text(), re.M)
    assert m, "no __version__"
    return m.group(1)


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build(out: Path) -> Path:
    version = _version()
    dist = f"{NAME}-{version}"
    files: list[tuple[str, bytes]] = []
    for p in sorted((HERE / NAME).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".css", ".R"):
            files.append((p.relative_to(HERE).as_posix(), p.read_bytes()))
    project = tomllib.loads((HERE / "pyproject.toml").read_text())
    # data files (server config, lab settings) and entry points exactly as pyproject.toml declares them
    for target, sources in project["tool"]["setuptools"]["data-files"].items():
        for src in sources:
            files.append((f"{dist}.data/data/{target}/{Path(src).name}", (HERE / src).read_bytes()))
    groups = project["project"].get("entry-points", {})
    entry_points = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                           for group, eps in sorted(groups.items()))
    meta = (f"Metadata-Version: 2.1\nName: backendai-hub-session\nVersion: {version}\n"
            "Summary: backendai-hub's session side: the opt-in code-execution log\nRequires-Python: >=3.10\n").encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: backendai-hub make_wheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files += [(f"{dist}.dist-info/METADATA", meta), (f"{dist}.dist-info/WHEEL", wheel),
              (f"{dist}.dist-info/top_level.txt", f"{NAME}\n".encode()),
              (f"{dist}.dist-info/entry_points.txt", entry_points.encode())]
    record = "".join(f"{n},{_digest(d)},{len(d)}\n" for n, d in files) + f"{dist}.dist-info/RECORD,,\n"
    files.append((f"{dist}.dist-info/RECORD", record.encode()))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files:
            info = zipfile.ZipInfo(n, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
