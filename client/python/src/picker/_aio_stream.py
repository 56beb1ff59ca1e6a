"""Stream mode of the asyncio client: the twin of _stream.py on grpc.aio.
One PickStream per client; releases are queued and sent along with the next
pick, or flushed by a task after release_flush_interval, at
max_release_batch, on flush() and on close()."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Dict, List, Optional

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
        self.done: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self.response: Optional[picker_pb2.PickResponse] = None
        self.error: Optional[PickerError] = None
        self.stream_failed = False
        self.abandoned = False

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Session:
    """One PickStream call: a queue of messages that grpc.aio sends from its
    own task (so that a pick never waits on a write), and a task that reads
    the answers."""

    def __init__(self, owner: "AsyncStreamPicker", stub: picker_pb2_grpc.PickerStub) -> None:
        self.waiters: Dict[int, _Waiter] = {}
        self.ended = False
        self.answered = False
        self._owner = owner
        self._outbox: "asyncio.Queue[Optional[picker_pb2.PickStreamRequest]]" = asyncio.Queue()
        self._call = stub.PickStream(self._messages())
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _messages(self) -> AsyncIterator[picker_pb2.PickStreamRequest]:
        while True:
            message = await self._outbox.get()
            if message is None:
                self._outbox.task_done()
                return
            yield message
            # grpc.aio asks for the next message once it has written this one.
            self._outbox.task_done()

    def send(self, message: picker_pb2.PickStreamRequest) -> None:
        self._outbox.put_nowait(message)

    async def drained(self) -> None:
        """Returns once grpc.aio has written every message sent so far."""
        await self._outbox.join()

    async def _read(self) -> None:
        error: Optional[PickerError] = None
        try:
            async for response in self._call:
                self._owner._answer(self, response)
        except grpc.RpcError as e:
            error = from_rpc_error(e)
        finally:
            self._outbox.put_nowait(None)  # ends grpc.aio's sending task
            self._owner._ended(self, error)

    async def close(self, timeout: float) -> None:
        """Half-closes the stream (the server answers what it got, then ends
        it) and waits for the reader; cancels the call after `timeout`."""
        self._outbox.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            self._call.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


class AsyncStreamPicker:
    """The PickStream session of one asyncio client, its release queue and flusher."""

    def __init__(self, stub: picker_pb2_grpc.PickerStub, options: Options) -> None:
        self._stub = stub
        self._options = options
        self._session: Optional[_Session] = None
        self._next_request_id = 1
        self._pending: List[picker_pb2.ReleaseRequest] = []
        self._first_pending_at = 0.0
        self._wake: Optional[asyncio.Event] = None
        self._flusher: Optional["asyncio.Task[None]"] = None
        self.closed = False

    async def pick(self, request: picker_pb2.PickRequest, timeout: float) -> picker_pb2.PickResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_error: Optional[PickerError] = None
        for attempt in range(_STREAM_ATTEMPTS):
            if attempt > 0 and loop.time() >= deadline:
                break
            waiter = self._send_pick(request)
            await self._wait(waiter, max(0.0, deadline - loop.time()), timeout)
            if waiter.stream_failed:
                last_error = waiter.error
                continue
            if waiter.error is not None:
                raise waiter.error
            assert waiter.response is not None
            return waiter.response
        raise last_error or UnavailableError("PickStream: the stream is broken")

    def _send_pick(self, request: picker_pb2.PickRequest) -> _Waiter:
        if self.closed:
            raise UnavailableError("Client: closed")
        self._start_flusher()
        session = self._live_session()
        request_id = self._next_request_id
        self._next_request_id += 1
        message = picker_pb2.PickStreamRequest(request_id=request_id, pick=request)
        self._take_pending(message)
        waiter = _Waiter(request.upstream)
        session.waiters[request_id] = waiter
        session.send(message)
        return waiter

    async def _wait(self, waiter: _Waiter, remaining: float, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(waiter.done), remaining)
        except asyncio.TimeoutError:
            if waiter.done.done():  # answered while the wait was timing out
                return
            waiter.abandoned = True  # its late answer is released
            raise DeadlineExceededError("Pick: no answer on PickStream within %.3f s" % timeout) from None
        except asyncio.CancelledError:
            waiter.abandoned = True
            raise

    def queue_release(self, release: picker_pb2.ReleaseRequest) -> None:
        if not self._pending:
            self._first_pending_at = asyncio.get_running_loop().time()
        self._pending.append(release)
        self._start_flusher()
        assert self._wake is not None
        if len(self._pending) == 1 or len(self._pending) >= self._options.max_release_batch:
            self._wake.set()

    async def flush(self) -> None:
        """Sends the queued releases and waits until they are written (at
        most the client's deadline)."""
        # With no live stream the releases are dropped: they are of leases
        # picked on streams that ended, which the server has released already.
        session = self._session
        if not self._pending or session is None or session.ended:
            self._pending.clear()
            return
        message = picker_pb2.PickStreamRequest()
        self._take_pending(message)
        session.send(message)
        try:
            await asyncio.wait_for(session.drained(), self._options.deadline)
        except asyncio.TimeoutError:
            raise DeadlineExceededError(
                "flush: releases not written within %.3f s" % self._options.deadline) from None

    async def close(self, deadline: float, answered_wait: float) -> None:
        """Sends the queued releases, then ends the stream: the server takes
        the releases before it sees the end, so none counts as abandoned.
        Waits for the end `answered_wait` seconds if the stream answered
        picks, else `deadline` (it may never have connected)."""
        if self.closed:
            return
        try:
            await self.flush()
        except DeadlineExceededError:
            pass  # the stream is stuck; its end releases the leases
        self.closed = True
        if self._flusher is not None:
            self._flusher.cancel()
        session, self._session = self._session, None
        if session is not None:
            await session.close(answered_wait if session.answered else deadline)

    def _live_session(self) -> _Session:
        if self._session is None or self._session.ended:
            self._session = _Session(self, self._stub)
        return self._session

    def _take_pending(self, message: picker_pb2.PickStreamRequest) -> None:
        message.releases.extend(self._pending)
        self._pending.clear()

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while not self.closed:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            due = self._first_pending_at + self._options.release_flush_interval
            if len(self._pending) < self._options.max_release_batch and loop.time() < due:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), due - loop.time())
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self.flush()
            except DeadlineExceededError:
                pass  # the stream is stuck; its end releases the leases

    # ---- called by a session's reader task ----

    def _answer(self, session: _Session, response: picker_pb2.PickStreamResponse) -> None:
        session.answered = True
        waiter = session.waiters.pop(response.request_id, None)
        if waiter is None:
            return
        if waiter.abandoned:
            # Nobody takes this lease: give it back.
            if response.code == 0 and response.pick.lease_id:
                self.queue_release(
                    release_request(waiter.upstream, response.pick.lease_id, Outcome.SUCCESS, None)
                )
            return
        if response.code == 0:
            waiter.response = response.pick
        else:
            waiter.error = error_for_number(response.code, response.message)
        waiter.finish()

    def _ended(self, session: _Session, error: Optional[PickerError]) -> None:
        session.ended = True
        for waiter in session.waiters.values():
            waiter.stream_failed = True
            waiter.error = UnavailableError(
                "PickStream ended before the answer: %s" % (error or "closed by the server")
            )
            waiter.finish()
        session.waiters.clear()
