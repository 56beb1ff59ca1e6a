"""AdminClient with the admin token, and both clients over mutual TLS, against
a picker-server started with --admin-token-file and --tls-* (certificates
made with openssl at test time)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator

import grpc
import pytest

import picker
from conftest import TARGETS, Server
from picker.v1 import admin_pb2

TOKEN = "py-test-token"
CERTS = """
set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=picker-py-ca -keyout ca.key -out ca.pem
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who.key -out $who.csr
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $who.ext
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \\
    -extfile $who.ext -out $who.pem
done
"""


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found: run scripts/install-deps.sh (Debian package openssl)")
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", "-c", CERTS], cwd=d, check=True, capture_output=True)
    (d / "token").write_text(TOKEN + "\n")
    return {p.name: p for p in d.iterdir()}


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory, pems: Dict[str, Path]) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("secure"), "--admin-token-file", str(pems["token"]),
               "--tls-cert", str(pems["server.pem"]), "--tls-key", str(pems["server.key"]),
               "--tls-client-ca", str(pems["ca.pem"]))
    yield s
    assert s.stop() == 0, s.log()


def client_tls(pems: Dict[str, Path], with_cert: bool = True) -> picker.Tls:
    if not with_cert:
        return picker.Tls(root_certs=pems["ca.pem"].read_bytes())
    return picker.Tls(root_certs=pems["ca.pem"].read_bytes(),
                      cert_chain=pems["client.pem"].read_bytes(),
                      private_key=pems["client.key"].read_bytes())


def test_admin_needs_the_token(secure_server: Server, pems: Dict[str, Path]) -> None:
    tls = client_tls(pems)
    with picker.AdminClient(secure_server.admin, tls=tls) as anonymous:
        with pytest.raises(picker.UnauthenticatedError) as denied:
            anonymous.list_upstreams()
        assert denied.value.code is grpc.StatusCode.UNAUTHENTICATED
    with picker.AdminClient(secure_server.admin, tls=tls, token="wrong") as wrong:
        with pytest.raises(picker.UnauthenticatedError):
            wrong.create_upstream(admin_pb2.Upstream(name="nope"))
    with picker.AdminClient(secure_server.admin, tls=tls, token_file=str(pems["token"])) as admin:
        admin.create_upstream(admin_pb2.Upstream(name="secure"))
        assert [t.address for t in admin.replace_targets("secure", TARGETS)] == TARGETS
        assert [u.name for u in admin.list_upstreams()] == ["secure"]
        with pytest.raises(picker.AlreadyExistsError):
            admin.create_upstream(admin_pb2.Upstream(name="secure"))
        with pytest.raises(picker.InvalidArgumentError, match="address"):
            admin.put_target("secure", "not an address")
        health = admin.set_target_health("secure", TARGETS[0], "UNHEALTHY")
        assert not health.healthy
        admin.set_target_health("secure", TARGETS[0], "CLEAR")
    with pytest.raises(ValueError, match="token"):
        picker.AdminClient(secure_server.admin, token="a", token_file=str(pems["token"]))


def test_picks_over_mutual_tls(secure_server: Server, pems: Dict[str, Path]) -> None:
    with picker.AdminClient(secure_server.admin, tls=client_tls(pems), token=TOKEN) as admin:
        admin.create_upstream(admin_pb2.Upstream(name="tls_picks"))
        admin.put_target("tls_picks", TARGETS[0])
    with picker.Client(secure_server.data, tls=client_tls(pems)) as client:
        with client.pick("tls_picks") as lease:
            assert lease.target == TARGETS[0]
    with picker.Client(secure_server.data, tls=client_tls(pems, with_cert=False)) as no_cert:
        with pytest.raises(picker.UnavailableError):
            no_cert.pick("tls_picks")
    with picker.Client(secure_server.data) as plaintext:
        with pytest.raises(picker.UnavailableError):
            plaintext.pick("tls_picks")

    async def main() -> str:
        async with picker.aio.Client(secure_server.data, tls=client_tls(pems), use_stream=True) as c:
            async with c.pick("tls_picks") as lease:
                return lease.target

    assert asyncio.run(main()) == TARGETS[0]
