"""Build hooks of picker-client: the picker.v1 stubs are generated at build time.

protoc (Debian protobuf-compiler) and grpc_python_plugin (Debian
protobuf-compiler-grpc) turn picker's .proto files into picker/v1/*_pb2.py,
*_pb2.pyi and *_pb2_grpc.py inside the build directory, so the wheel carries
them and the source tree holds none. The .proto files are the repository's
(../../protos from here); an sdist carries a copy under protos/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PROTO_FILES = ("picker/v1/picker.proto", "picker/v1/admin.proto")
# In an unpacked sdist first, then in the repository.
PROTO_ROOTS = (HERE / "protos", HERE.parent.parent / "protos")
GRPC_PLUGIN_NAME = "grpc_python_plugin"


def proto_root() -> Path:
    for root in PROTO_ROOTS:
        if all((root / name).is_file() for name in PROTO_FILES):
            return root
    raise SystemExit(
        "picker-client: cannot find %s under %s"
        % (", ".join(PROTO_FILES), " or ".join(str(r) for r in PROTO_ROOTS))
    )


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if not found:
        raise SystemExit(
            "picker-client: %s not found on PATH (Debian package %s; "
            "scripts/install-deps.sh installs it)" % (name, package)
        )
    return found


def generate_stubs(out_dir: Path) -> None:
    protoc = tool("protoc", "protobuf-compiler")
    plugin = tool(GRPC_PLUGIN_NAME, "protobuf-compiler-grpc")
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        protoc,
        "-I", str(proto_root()),
        "--python_out=%s" % out_dir,
        "--pyi_out=%s" % out_dir,
        "--grpc_python_out=%s" % out_dir,
        "--plugin=protoc-gen-grpc_python=%s" % plugin,
        *PROTO_FILES,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("picker-client: protoc failed (%d): %s" % (result.returncode, result.stderr))
    (out_dir / "picker" / "v1" / "__init__.py").write_text(
        '"""picker.v1 messages and stubs, generated from picker\'s .proto files."""\n'
    )


class BuildPyWithStubs(build_py):
    def run(self) -> None:
        super().run()
        generate_stubs(Path(self.build_lib))


class SdistWithProtos(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        root = proto_root()
        for name in PROTO_FILES:
            target = Path(base_dir) / "protos" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name, target)


setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos})
