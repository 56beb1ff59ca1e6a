"""picker.Client in stream mode (use_stream): picks over one PickStream,
releases riding along with the next pick."""

from __future__ import annotations

import threading

import pytest

import picker
from conftest import TARGETS, Server, Upstreams, eventually, releases


def test_releases_ride_along_with_the_next_pick(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    # A flush interval that never comes: only the next pick carries releases.
    with picker.Client(server.data, use_stream=True, release_flush_interval=600) as client:
        first, second = client.pick(up), client.pick(up)
        with first, second:
            assert first.target in TARGETS and second.target in TARGETS
        assert first.release() is picker.ReleaseState.ALREADY_RELEASED
        assert upstreams.active(up) == 2, "queued releases were sent before a pick took them"
        held = client.pick(up)
        assert upstreams.active(up) == 1, "the pick did not carry the two queued releases"
        assert held.release() is picker.ReleaseState.QUEUED
        client.flush()
        assert upstreams.wait_active(up, 0) == 0
    assert releases(server, up)["success"] == 3


def test_queued_releases_are_flushed_after_the_interval(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data, use_stream=True, release_flush_interval=0.05) as client:
        with client.pick(up):
            pass
        assert upstreams.wait_active(up, 0, within=2) == 0


def test_many_threads_share_the_stream(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    errors: list = []

    def work(client: picker.Client) -> None:
        try:
            for _ in range(100):
                with client.pick(up) as lease:
                    assert lease.target in TARGETS
        except Exception as e:  # reported by the main thread
            errors.append(e)

    with picker.Client(server.data, use_stream=True) as client:
        threads = [threading.Thread(target=work, args=(client,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    # Closing sent the last queued releases before ending the stream.
    assert releases(server, up)["success"] == 400
    assert releases(server, up)["abandoned"] == 0
    assert upstreams.active(up) == 0


def test_errors_are_answers_on_the_stream(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data, use_stream=True) as client:
        with pytest.raises(picker.NotFoundError, match="no_such_upstream"):
            client.pick("no_such_upstream")
        with client.pick(up) as lease:  # the stream goes on
            assert lease.target in TARGETS


def test_a_late_answer_is_released(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    with picker.Client(server.data, use_stream=True) as client:
        with pytest.raises(picker.DeadlineExceededError):
            client.pick(up, timeout=1e-6)
        assert upstreams.wait_active(up, 0) == 0


def test_closing_ends_the_stream_and_its_leases(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()
    client = picker.Client(server.data, use_stream=True)
    lease = client.pick(up)
    client.close()
    assert upstreams.wait_active(up, 0) == 0
    assert eventually(lambda: releases(server, up)["abandoned"], 1) == 1
    with pytest.raises(picker.UnavailableError, match="closed"):
        lease.release()
