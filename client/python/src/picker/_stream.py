"""Stream mode of the sync client: picks over one long-lived PickStream, with
releases queued and sent along with the next pick (PickStreamRequest.releases),
or flushed by a background thread after release_flush_interval, at
max_release_batch, on flush() and on close()."""

from __future__ import annotations

import queue
import threading
import time
from typing import Dict, Iterator, List, Optional

import grpc

from picker._common import Options, Outcome, release_request
from picker.errors import (
    DeadlineExceededError,
    PickerError,
    UnavailableError,
    error_for_number,
    from_rpc_error,
)
from picker.v1 import picker_pb2, picker_pb2_grpc

# A pick whose stream broke before its answer is sent again once on a new
# stream (the server released the broken stream's leases as abandoned).
_STREAM_ATTEMPTS = 2


class _Waiter:
    """One pick waiting for its answer on the stream."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.event = threading.Event()
        self.response: Optional[picker_pb2.PickResponse] = None
        self.error: Optional[PickerError] = None
        self.stream_failed = False
        self.abandoned = False


class _Session:
    """One PickStream call: a queue of messages that grpcio sends, and a thread
    that reads the answers."""

    def __init__(self, owner: "StreamPicker", stub: picker_pb2_grpc.PickerStub) -> None:
        self.waiters: Dict[int, _Waiter] = {}
        self.ended = False
        self.answered = False
        self._outbox: "queue.Queue[Optional[picker_pb2.PickStreamRequest]]" = queue.Queue()
        self._owner = owner
        self._call = stub.PickStream(self._messages())
        self._reader = threading.Thread(target=self._read, name="picker-stream-reader", daemon=True)
        self._reader.start()

    def _messages(self) -> Iterator[picker_pb2.PickStreamRequest]:
        while True:
            message = self._outbox.get()
            if message is None:
                self._outbox.task_done()
                return
            yield message
            # grpcio asks for the next message once it has sent this one.
            self._outbox.task_done()

    def send(self, message: picker_pb2.PickStreamRequest) -> None:
        self._outbox.put(message)

    def drained(self, timeout: float) -> bool:
        """Waits until grpcio has sent every message given so far."""
        deadline = time.monotonic() + timeout
        with self._outbox.all_tasks_done:
            while self._outbox.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._outbox.all_tasks_done.wait(remaining)
        return True

    def _read(self) -> None:
        error: Optional[PickerError] = None
        try:
            for response in self._call:
                self._owner._answer(self, response)
        except grpc.RpcError as e:
            error = from_rpc_error(e)
        self._outbox.put(None)  # frees grpcio's sending thread
        self._owner._ended(self, error)

    def close(self, timeout: float) -> None:
        """Half-closes the stream (the server answers what it got, then ends
        it) and waits for the reader; cancels the call after `timeout`."""
        self._outbox.put(None)
        self._reader.join(timeout)
        if self._reader.is_alive():
            self._call.cancel()
            self._reader.join(timeout)


class StreamPicker:
    """The PickStream session of one client, its release queue and flusher."""

    def __init__(self, stub: picker_pb2_grpc.PickerStub, options: Options) -> None:
        self._stub = stub
        self._options = options
        self._mu = threading.Lock()
        self._wake = threading.Condition(self._mu)
        self._session: Optional[_Session] = None
        self._next_request_id = 1
        self._pending: List[picker_pb2.ReleaseRequest] = []
        self._first_pending_at = 0.0
        self.closed = False
        self._flusher = threading.Thread(target=self._flush_loop, name="picker-release-flusher", daemon=True)
        self._flusher.start()

    def pick(self, request: picker_pb2.PickRequest, timeout: float) -> picker_pb2.PickResponse:
        deadline = time.monotonic() + timeout
        last_error: Optional[PickerError] = None
        for attempt in range(_STREAM_ATTEMPTS):
            if attempt > 0 and time.monotonic() >= deadline:
                break
            waiter = self._send_pick(request)
            if not waiter.event.wait(max(0.0, deadline - time.monotonic())):
                with self._mu:
                    if not waiter.event.is_set():
                        waiter.abandoned = True  # its late answer is released
                        raise DeadlineExceededError(
                            "Pick: no answer on PickStream within %.3f s" % timeout
                        )
            if waiter.stream_failed:
                last_error = waiter.error
                continue
            if waiter.error is not None:
                raise waiter.error
            assert waiter.response is not None
            return waiter.response
        raise last_error or UnavailableError("PickStream: the stream is broken")

    def _send_pick(self, request: picker_pb2.PickRequest) -> _Waiter:
        waiter = _Waiter(request.upstream)
        with self._mu:
            if self.closed:
                raise UnavailableError("Client: closed")
            session = self._live_session_locked()
            request_id = self._next_request_id
            self._next_request_id += 1
            message = picker_pb2.PickStreamRequest(request_id=request_id, pick=request)
            self._take_pending_locked(message)
            session.waiters[request_id] = waiter
            session.send(message)
        return waiter

    def queue_release(self, release: picker_pb2.ReleaseRequest) -> None:
        with self._mu:
            self._queue_locked(release)

    def flush(self) -> None:
        """Sends the queued releases and waits until they are written (at
        most the client's deadline)."""
        with self._mu:
            session = self._flush_locked()
        if session is not None and not session.drained(self._options.deadline):
            raise DeadlineExceededError(
                "flush: releases not written within %.3f s" % self._options.deadline)

    def close(self, deadline: float, answered_wait: float) -> None:
        """Sends the queued releases, then ends the stream: the server takes
        the releases before it sees the end, so none counts as abandoned.
        Waits for the end `answered_wait` seconds if the stream answered
        picks, else `deadline` (it may never have connected)."""
        with self._mu:
            if self.closed:
                return
            self._flush_locked()
            self.closed = True
            session, self._session = self._session, None
            self._wake.notify_all()
        self._flusher.join(deadline)
        if session is not None:
            session.close(answered_wait if session.answered else deadline)

    # ---- called with self._mu held ----

    def _live_session_locked(self) -> _Session:
        if self._session is None or self._session.ended:
            self._session = _Session(self, self._stub)
        return self._session

    def _take_pending_locked(self, message: picker_pb2.PickStreamRequest) -> None:
        message.releases.extend(self._pending)
        self._pending.clear()

    def _queue_locked(self, release: picker_pb2.ReleaseRequest) -> None:
        if not self._pending:
            self._first_pending_at = time.monotonic()
        self._pending.append(release)
        if len(self._pending) == 1 or len(self._pending) >= self._options.max_release_batch:
            self._wake.notify_all()

    def _flush_locked(self) -> Optional[_Session]:
        """Hands the queued releases to the live stream, which it returns.
        With none they are dropped: they are of leases picked on streams that
        ended, which the server has released already."""
        session = self._session
        if not self._pending or session is None or session.ended:
            self._pending.clear()
            return None
        message = picker_pb2.PickStreamRequest()
        self._take_pending_locked(message)
        session.send(message)
        return session

    def _flush_loop(self) -> None:
        with self._mu:
            while not self.closed:
                if not self._pending:
                    self._wake.wait()
                    continue
                due = self._first_pending_at + self._options.release_flush_interval
                now = time.monotonic()
                if len(self._pending) < self._options.max_release_batch and now < due:
                    self._wake.wait(due - now)
                    continue
                self._flush_locked()

    # ---- called by a session's reader thread ----

    def _answer(self, session: _Session, response: picker_pb2.PickStreamResponse) -> None:
        with self._mu:
            session.answered = True
            waiter = session.waiters.pop(response.request_id, None)
            if waiter is None:
                return
            if waiter.abandoned:
                # Nobody takes this lease: give it back.
                if response.code == 0 and response.pick.lease_id:
                    self._queue_locked(
                        release_request(waiter.upstream, response.pick.lease_id, Outcome.SUCCESS, None)
                    )
                return
            if response.code == 0:
                waiter.response = response.pick
            else:
                waiter.error = error_for_number(response.code, response.message)
            waiter.event.set()

    def _ended(self, session: _Session, error: Optional[PickerError]) -> None:
        with self._mu:
            session.ended = True
            for waiter in session.waiters.values():
                waiter.stream_failed = True
                waiter.error = UnavailableError(
                    "PickStream ended before the answer: %s" % (error or "closed by the server")
                )
                waiter.event.set()
            session.waiters.clear()
