"""picker.Client (unary mode) against a real picker-server."""

from __future__ import annotations

import time
from typing import List

import grpc
import pytest

import picker
from conftest import TARGETS, Server, Upstreams, releases
from picker.v1 import admin_pb2, picker_pb2


def test_with_block_releases_success_and_measured_latency(
        server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data) as client:
        with client.pick(up) as lease:
            assert lease.target in TARGETS and lease.lease_id > 0
            assert lease.lease_ttl == 60.0
            assert upstreams.active(up) == 1
            time.sleep(0.05)
        assert not lease.valid
    assert upstreams.active(up) == 0
    assert releases(server, up)["success"] == 1
    latency = server.sample("picker_request_duration_seconds_sum", upstream=up)
    assert 0.05 <= latency < 1.0, latency


def test_exception_in_block_releases_failure_and_propagates(
        server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data) as client:
        with pytest.raises(RuntimeError, match="boom"):
            with client.pick(up):
                raise RuntimeError("boom")
        with pytest.raises(TimeoutError):
            with client.pick(up):
                raise TimeoutError("the target did not answer")
    assert releases(server, up) == {"success": 0, "failure": 1, "timeout": 1, "expired": 0, "abandoned": 0}


def test_outcome_and_latency_set_by_the_caller(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data) as client:
        with client.pick(up) as lease:
            lease.outcome = picker.Outcome.TIMEOUT
            lease.latency = 0.25
        with pytest.raises(TypeError, match="outcome"):
            lease.outcome = "FAILURE"  # type: ignore[assignment]
        with pytest.raises(ValueError, match="latency"):
            lease.latency = -1
    assert releases(server, up)["timeout"] == 1
    assert server.sample("picker_request_duration_seconds_sum", upstream=up) == pytest.approx(0.25)


def test_load_reports_reach_weighted_round_robin(server: Server, upstreams: Upstreams) -> None:
    """The bytes of a backend's endpoint-load-metrics-bin trailer, handed to
    the lease, reach the server: the busy target's weight falls."""
    lb = admin_pb2.LoadBalancer()
    lb.weighted_round_robin.blackout_period.SetInParent()  # 0s: no blackout.
    lb.weighted_round_robin.weight_update_period.nanos = 100_000_000
    up = upstreams.make(lb)
    busy = TARGETS[-1]

    def run(n: int) -> int:
        picked = 0
        with picker.Client(server.data) as client:
            for _ in range(n):
                with client.pick(up) as lease:
                    picked += lease.target == busy
                    report = picker_pb2.OrcaLoadReport(
                        cpu_utilization=0.9 if lease.target == busy else 0.1, rps_fractional=90)
                    lease.load_report = report.SerializeToString()
        return picked

    run(60)
    time.sleep(0.5)  # A few refreshes of the weights.
    n = 9 * (len(TARGETS) - 1) + 1  # One period of the schedule, times 20.
    assert run(20 * n) < 20 * n / len(TARGETS) / 2
    with picker.Client(server.data) as client:
        with client.pick(up) as lease:
            with pytest.raises(ValueError, match="load_report"):
                lease.load_report = b"\xff\xff\xff"
            with pytest.raises(TypeError, match="load_report"):
                lease.load_report = 3  # type: ignore[assignment]
            lease.load_report = picker_pb2.OrcaLoadReport(cpu_utilization=0.2, rps_fractional=5)
            assert lease.load_report.rps_fractional == 5


def test_release_states_detach_and_release_by_id(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data) as client:
        lease = client.pick(up)
        assert lease.release() is picker.ReleaseState.RELEASED
        assert lease.release() is picker.ReleaseState.ALREADY_RELEASED
        assert client.release(up, lease.lease_id) is picker.ReleaseState.ALREADY_RELEASED
        lease_id = client.pick(up).detach()
        assert upstreams.active(up) == 1
        assert client.release(up, lease_id, picker.Outcome.FAILURE, 0.01) is picker.ReleaseState.RELEASED
    assert upstreams.active(up) == 0
    assert releases(server, up)["failure"] == 1


def test_headers_pick_consistently_on_a_hash_ring(server: Server, upstreams: Upstreams) -> None:
    ring = admin_pb2.LoadBalancer(ring_hash=admin_pb2.RingHash(hash_policies=[
        admin_pb2.HashPolicy(header=admin_pb2.HashPolicy.Header(name="x-user"))]))
    up = upstreams.make(ring)
    with picker.Client(server.data) as client:
        picks = []
        for _ in range(5):
            with client.pick(up, headers={"x-user": "42"}) as lease:
                picks.append((lease.target, lease.hash))
        others = set()
        for user in range(40):
            with client.pick(up, headers={"x-user": str(user)}) as lease:
                others.add(lease.target)
    assert len(set(picks)) == 1 and picks[0][1] is not None, picks
    assert others == set(TARGETS)


def test_client_service_and_tags_select_a_per_client_configuration(
        server: Server, upstreams: Upstreams) -> None:
    ring = admin_pb2.LoadBalancer(ring_hash=admin_pb2.RingHash(hash_policies=[
        admin_pb2.HashPolicy(header=admin_pb2.HashPolicy.Header(name="x-user"))]))
    up = upstreams.make(client_configs=[
        admin_pb2.ClientConfig(client=admin_pb2.ClientSelector(service="web"), load_balancer=ring),
        admin_pb2.ClientConfig(client=admin_pb2.ClientSelector(tags={"version": "v2"}),
                               load_balancer=ring)])
    for use_stream in (False, True):
        for service, tags in (("web", None), ("api", {"version": "v2"})):
            # Set once on the client, sent with every pick.
            with picker.Client(server.data, use_stream=use_stream, client_service=service,
                               client_tags=tags) as client:
                hashes = set()
                for _ in range(5):
                    with client.pick(up, headers={"x-user": "42"}) as lease:
                        hashes.add((lease.target, lease.hash))
            assert len(hashes) == 1 and next(iter(hashes))[1] is not None, (service, hashes)
        # Another caller: the upstream's own round robin, no hash.
        with picker.Client(server.data, use_stream=use_stream, client_service="api") as client:
            seen = set()
            for _ in range(len(TARGETS)):
                with client.pick(up, headers={"x-user": "42"}) as lease:
                    assert lease.hash is None
                    seen.add(lease.target)
        assert seen == set(TARGETS)


def test_exclude_avoids_targets(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data) as client:
        for _ in range(4):
            with client.pick(up, exclude=TARGETS[:2]) as lease:
                assert lease.target == TARGETS[2]
        # A PickArgs is a request to reuse; keywords given with it override its fields.
        args = picker.PickArgs(up, exclude=TARGETS[1:])
        with client.pick(args) as lease:
            assert lease.target == TARGETS[0]
        with client.pick(args, exclude=[TARGETS[0], TARGETS[2]]) as lease:
            assert lease.target == TARGETS[1]


def test_pick_with_retry_excludes_the_targets_tried(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    attempted: List[str] = []

    def attempt(lease: picker.Lease) -> bool:
        attempted.append(lease.target)
        return len(attempted) == 3  # the first two attempts fail

    with picker.Client(server.data, max_attempts=3) as client:
        result = client.pick_with_retry(up, attempt)
        assert result.outcome is picker.Outcome.SUCCESS and result.attempts == 3
        assert result.tried == attempted and sorted(attempted) == sorted(TARGETS)
        tried = []
        for lease in client.retry(up):
            with lease:
                tried.append(lease.target)
        assert sorted(tried) == sorted(TARGETS)
    assert releases(server, up)["failure"] == 2
    assert releases(server, up)["success"] == 4


def test_errors_carry_the_grpc_code(server: Server, upstreams: Upstreams) -> None:
    empty = upstreams.make(targets=[])
    with picker.Client(server.data) as client:
        with pytest.raises(picker.NotFoundError) as not_found:
            client.pick("no_such_upstream")
        assert not_found.value.code is grpc.StatusCode.NOT_FOUND
        assert isinstance(not_found.value, picker.PickerError)
        with pytest.raises(picker.UnavailableError):
            client.pick(empty)
        with pytest.raises(picker.NotFoundError):
            client.release("no_such_upstream", 1)
        with pytest.raises(ValueError, match="upstream"):
            client.pick("")
        with pytest.raises(TypeError, match="colour"):
            client.retry(empty, colour="red")


def test_deadlines(server: Server, silent_address: str) -> None:
    with picker.Client(silent_address, deadline=0.2) as client:
        started = time.monotonic()
        with pytest.raises(picker.DeadlineExceededError) as late:
            client.pick("users")
        assert 0.15 < time.monotonic() - started < 2
        assert isinstance(late.value, TimeoutError)
        assert late.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(picker.DeadlineExceededError):
            client.release("users", 1, timeout=0.1)
        with pytest.raises(ValueError, match="timeout"):
            client.pick("users", timeout=0)
    with picker.Client(silent_address, use_stream=True, deadline=0.2) as streaming:
        with pytest.raises(picker.DeadlineExceededError):
            streaming.pick("users")


def test_bad_options_name_the_argument(server: Server) -> None:
    for kwargs, field in [({"deadline": 0}, "deadline"), ({"max_attempts": 0}, "max_attempts"),
                          ({"release_flush_interval": -1}, "release_flush_interval"),
                          ({"max_release_batch": 0}, "max_release_batch"),
                          ({"tls": "yes"}, "tls")]:
        with pytest.raises(ValueError, match=field):
            picker.Client(server.data, **kwargs)
    with pytest.raises(ValueError, match="address"):
        picker.Client()
    with pytest.raises(ValueError, match="cert_chain"):
        picker.Client(server.data, tls=picker.Tls(cert_chain=b"x"))


def test_no_server_is_unavailable(server: Server) -> None:
    with picker.Client("127.0.0.1:1") as client:
        with pytest.raises(picker.UnavailableError):
            client.pick("anything")


def test_closed_client_refuses_calls(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    client = picker.Client(server.data)
    lease = client.pick(up)
    client.close()
    with pytest.raises(picker.UnavailableError, match="closed"):
        lease.release()
    with pytest.raises(picker.UnavailableError, match="closed"):
        client.pick(up)
