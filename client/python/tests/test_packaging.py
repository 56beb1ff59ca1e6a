"""The package as it ships: an sdist and a wheel built by python3 -m build
(the wheel from the sdist), and the sdist installed into a fresh venv away
from the repository, where it must still find its .proto files, generate its
stubs and pick from the real server."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import List

import pytest

from conftest import TARGETS, Server, Upstreams

PACKAGE = Path(__file__).resolve().parents[1]


def run(command: List[str], cwd: Path) -> str:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        pytest.fail("%s failed (%d):\n%s\n%s" % (" ".join(map(str, command)), result.returncode,
                                                  result.stdout[-3000:], result.stderr[-3000:]))
    return result.stdout


def only(paths: List[Path], what: str) -> Path:
    assert len(paths) == 1, "expected one %s, found %s" % (what, paths)
    return paths[0]


def test_sdist_and_wheel_work_outside_the_repository(
        server: Server, upstreams: Upstreams, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, PACKAGE], tmp_path)
    sdist = only(sorted(dist.glob("picker*-0.1.0.tar.gz")), "sdist")
    wheel = only(sorted(dist.glob("picker_client-0.1.0-py3-none-any.whl")), "wheel")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    for wanted in ("protos/picker/v1/picker.proto", "protos/picker/v1/admin.proto",
                   "src/picker/client.py", "tests/conftest.py", "setup.py"):
        assert any(n.endswith(wanted) for n in names), "sdist lacks %s" % wanted
    assert not any("_pb2" in n for n in names), "the sdist must carry .proto files, not stubs"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for wanted in ("picker/v1/picker_pb2.py", "picker/v1/picker_pb2.pyi", "picker/v1/picker_pb2_grpc.py",
                   "picker/v1/admin_pb2_grpc.py", "picker/py.typed", "picker/aio.py"):
        assert wanted in names, "wheel lacks %s" % wanted

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path)
    run([venv / "bin" / "pip", "install", "--no-build-isolation", "--no-index", sdist], tmp_path)
    up = upstreams.make()
    script = ("import picker, sys\n"
              "assert picker.__file__.startswith(sys.prefix), picker.__file__\n"
              "with picker.Client(sys.argv[1]) as c, c.pick(sys.argv[2]) as lease:\n"
              "    print(lease.target)\n")
    target = run([venv / "bin" / "python", "-c", script, server.data, up], tmp_path).strip()
    assert target in TARGETS
