"""Fixtures of picker-client's tests: a real picker-server on 127.0.0.1 free
ports (PICKER_SERVER names the binary; ctest sets it), and helpers to read its
/metrics and make upstreams."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

import pytest

import picker
from picker.v1 import admin_pb2

T = TypeVar("T")
LISTENING = re.compile(r"listening data=(\S+) admin=(\S+) metrics=(\S+)")
TARGETS = ["10.9.0.1:8080", "10.9.0.2:8080", "10.9.0.3:8080"]


class Server:
    """A running picker-server child process."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        binary = os.environ.get("PICKER_SERVER", "")
        if not binary or not os.access(binary, os.X_OK):
            pytest.fail("PICKER_SERVER must name the picker-server binary (ctest sets it); got %r" % binary)
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", "--data-dir", str(workdir / "data"), *extra],
            stdout=subprocess.DEVNULL, stderr=self._log)
        self.data, self.admin, self.metrics_address = self._wait_listening()

    def _wait_listening(self) -> List[str]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                return list(found.groups())
            if self.proc.poll() is not None:
                pytest.fail("picker-server exited with %d before listening:\n%s"
                            % (self.proc.returncode, self.log()))
            time.sleep(0.05)
        pytest.fail("picker-server printed no 'listening data=...' line within 20 s:\n%s" % self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        with urllib.request.urlopen("http://%s/metrics" % self.metrics_address, timeout=10) as r:
            return r.read().decode()

    def sample(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            found = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
            if not found or found.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(3) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(found.group(4))
        return total

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    assert s.stop() == 0, "picker-server did not exit 0 on SIGTERM:\n" + s.log()


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[picker.AdminClient]:
    with picker.AdminClient(server.admin) as client:
        yield client


_names = itertools.count(1)


class Upstreams:
    """Makes fresh upstreams, each with its own name and targets."""

    def __init__(self, admin: picker.AdminClient) -> None:
        self.admin = admin

    def make(self, load_balancer: Optional[admin_pb2.LoadBalancer] = None,
             targets: Optional[List[str]] = None, **fields: object) -> str:
        name = "py_%d" % next(_names)
        upstream = admin_pb2.Upstream(name=name, **fields)
        if load_balancer is not None:
            upstream.load_balancer.CopyFrom(load_balancer)
        self.admin.create_upstream(upstream)
        for address in TARGETS if targets is None else targets:
            self.admin.put_target(name, address)
        return name

    def active(self, name: str) -> int:
        return sum(t.active_requests for t in self.admin.get_upstream_health(name).targets)

    def wait_active(self, name: str, want: int, within: float = 3.0) -> int:
        return eventually(lambda: self.active(name), want, within)


@pytest.fixture
def upstreams(admin: picker.AdminClient) -> Upstreams:
    return Upstreams(admin)


def eventually(read: Callable[[], T], want: T, within: float = 3.0) -> T:
    """Polls `read` until it returns `want` (or time runs out); returns the
    last value, for checks of what the server does after answering."""
    deadline = time.monotonic() + within
    while True:
        got = read()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def releases(server: Server, upstream: str) -> Dict[str, float]:
    """picker_releases_total of an upstream by outcome."""
    return {o: server.sample("picker_releases_total", upstream=upstream, outcome=o)
            for o in ("success", "failure", "timeout", "expired", "abandoned")}


@pytest.fixture
def silent_address() -> Iterator[str]:
    """A port that accepts TCP connections and never answers: a call there
    waits for the server until its deadline."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
