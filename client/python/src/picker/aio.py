"""The asyncio client of picker's data plane, on grpc.aio: the twin of
picker.Client, with coroutines and ``async with``::

    async with picker.aio.Client("127.0.0.1:50051") as client:
        async with client.pick("users", headers={"x-user": "42"}) as lease:
            await send_request_to(lease.target)
        # released on leaving the block, with the outcome (an exception is a
        # FAILURE) and the measured latency

Create the client inside the event loop that uses it.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from types import TracebackType
from typing import Any, Awaitable, Callable, Generator, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import grpc

from picker._aio_stream import AsyncStreamPicker
from picker._common import (
    Options,
    Outcome,
    PickArgs,
    ReleaseState,
    RetryResult,
    Tls,
    as_outcome,
    channel_credentials,
    load_report_message,
    pick_args,
    release_request,
)
from picker._lease import LeaseBase
from picker.errors import FailedPreconditionError, PickerError, UnavailableError, from_rpc_error
from picker.v1 import picker_pb2, picker_pb2_grpc

_log = logging.getLogger("picker")
# How long close() waits for the server to end a stream that has answered
# picks, after the last releases (they count as released, not abandoned,
# only once it has read them). A stream that never answered waits `deadline`.
CLOSE_WAIT = 5.0
_R = TypeVar("_R")


async def call(method: Callable[..., Awaitable[_R]], request: Any, timeout: float,
               metadata: Any = None) -> _R:
    """One unary RPC; grpcio's RpcError becomes a PickerError."""
    try:
        return await method(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from e


def make_channel(address: Optional[str], channel: Optional[grpc.aio.Channel], tls: "Tls | bool",
                 channel_options: Sequence[Tuple[str, Any]]) -> Tuple[grpc.aio.Channel, bool]:
    """The channel to use and whether the client owns (and closes) it."""
    if channel is not None:
        if address is not None:
            raise ValueError("address and channel: give one, not both")
        return channel, False
    if not isinstance(address, str) or not address:
        raise ValueError("address: is required (host:port, or a gRPC target URI)")
    credentials = channel_credentials(tls)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=channel_options), True
    return grpc.aio.secure_channel(address, credentials, options=channel_options), True


class AsyncLease(LeaseBase):
    """An open lease; ``async with`` releases it on exit. Without it, await
    release() (or call detach()): a lease left open is released by the
    server only when its TTL passes."""

    def __init__(self, client: "Client", upstream: str, response: picker_pb2.PickResponse) -> None:
        super().__init__(upstream, response)
        self._client = client

    async def release(self) -> ReleaseState:
        """Releases now with the outcome and latency; QUEUED in stream mode.
        A second call does nothing and answers ALREADY_RELEASED."""
        if not self._take():
            return ReleaseState.ALREADY_RELEASED
        return await self._client._release_lease(self.upstream, self.lease_id, self.outcome,
                                                 self.latency, self.load_report)

    def detach(self) -> int:
        """Gives the lease up without releasing it; returns its id."""
        self._take()
        return self.lease_id

    async def __aenter__(self) -> "AsyncLease":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if not self.valid:
            return
        self._exit_outcome(exc)
        try:
            await self.release()
        except PickerError as e:
            # The block's own exception matters more, and a lease whose
            # release is lost is expired by the server after its TTL.
            _log.warning("picker: release of lease %d on %s failed: %s", self.lease_id, self.upstream, e)

    def __del__(self) -> None:
        if getattr(self, "_open", False):
            warnings.warn("%r was never released (the server expires it after its TTL)" % self,
                          ResourceWarning, stacklevel=2)


class PickCall:
    """What Client.pick returns: await it for the lease, or ``async with``
    it to have the lease released on exit."""

    def __init__(self, make: Callable[[], Awaitable[AsyncLease]]) -> None:
        self._make = make
        self._lease: Optional[AsyncLease] = None

    def __await__(self) -> Generator[Any, None, AsyncLease]:
        return self._make().__await__()

    async def __aenter__(self) -> AsyncLease:
        self._lease = await self._make()
        return self._lease

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        assert self._lease is not None
        await self._lease.__aexit__(exc_type, exc, tb)


class AsyncRetry:
    """The picks of one request's attempts, each excluding the targets tried
    before it::

        async for lease in client.retry("users"):
            async with lease:
                if await send_request_to(lease.target):
                    break
                lease.outcome = picker.Outcome.FAILURE
    """

    def __init__(self, client: "Client", args: PickArgs, max_attempts: int) -> None:
        self._client = client
        self._args = args
        self.max_attempts = max_attempts
        self.attempts = 0
        self.tried: List[str] = []

    async def next(self) -> AsyncLease:
        """The lease of the next attempt. FailedPreconditionError once
        max_attempts picks were made; a failed pick raises its error."""
        if self.attempts >= self.max_attempts:
            raise FailedPreconditionError("Retry: all %d attempts made (max_attempts)" % self.max_attempts)
        lease = await self._client._pick(self._args, self.tried, None)
        self.attempts += 1
        self.tried.append(lease.target)
        return lease

    def __aiter__(self) -> "AsyncRetry":
        return self

    async def __anext__(self) -> AsyncLease:
        if self.attempts >= self.max_attempts:
            raise StopAsyncIteration
        return await self.next()


class Client:
    """The asyncio twin of picker.Client: same arguments, same behaviour."""

    def __init__(self, address: Optional[str] = None, *, channel: Optional[grpc.aio.Channel] = None,
                 tls: "Tls | bool" = False, deadline: float = 1.0, max_attempts: int = 3,
                 use_stream: bool = False, release_flush_interval: float = 0.010,
                 max_release_batch: int = 256,
                 channel_options: Sequence[Tuple[str, Any]] = (), client_service: str = "",
                 client_tags: Optional[Mapping[str, str]] = None) -> None:
        self._options = Options(deadline, max_attempts, use_stream, release_flush_interval,
                                max_release_batch, client_service, dict(client_tags or {}))
        self._channel, self._owns_channel = make_channel(address, channel, tls, channel_options)
        self._stub = picker_pb2_grpc.PickerStub(self._channel)
        self._stream = AsyncStreamPicker(self._stub, self._options) if use_stream else None
        self._closed = False

    @property
    def options(self) -> Options:
        return self._options

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    def pick(self, upstream: "str | PickArgs", *, headers: Optional[Mapping[str, str]] = None,
             cookies: Optional[Mapping[str, str]] = None,
             query_params: Optional[Mapping[str, str]] = None, source_ip: Optional[str] = None,
             filter_state: Optional[Mapping[str, str]] = None, client_zone: Optional[str] = None,
             hash: Optional[int] = None, exclude: Optional[Sequence[str]] = None,
             timeout: Optional[float] = None) -> PickCall:
        """As picker.Client.pick; ``await`` the result, or ``async with`` it."""
        args = pick_args(upstream, dict(
            headers=headers, cookies=cookies, query_params=query_params, source_ip=source_ip,
            filter_state=filter_state, client_zone=client_zone, hash=hash, exclude=exclude))
        return PickCall(lambda: self._pick(args, (), timeout))

    def retry(self, upstream: "str | PickArgs", **attributes: Any) -> AsyncRetry:
        """The attempts of one request (see AsyncRetry); attributes as for pick()."""
        return AsyncRetry(self, pick_args(upstream, attributes), self._options.max_attempts)

    async def pick_with_retry(
        self, upstream: "str | PickArgs",
        attempt: Callable[[AsyncLease], "Outcome | bool | Awaitable[Outcome | bool]"],
        **attributes: Any,
    ) -> RetryResult:
        """As picker.Client.pick_with_retry; `attempt` may be a coroutine function."""
        retry = self.retry(upstream, **attributes)
        result = RetryResult()
        while retry.attempts < retry.max_attempts:
            try:
                lease = await retry.next()
            except PickerError:
                if result.attempts == 0:
                    raise
                break
            async with lease:
                answer = attempt(lease)
                if inspect.isawaitable(answer):
                    answer = await answer
                lease.outcome = as_outcome(answer)  # type: ignore[arg-type]
            result = RetryResult(lease.outcome, retry.attempts, list(retry.tried))
            if lease.outcome is Outcome.SUCCESS:
                break
        return result

    async def release(self, upstream: str, lease_id: int, outcome: Outcome = Outcome.SUCCESS,
                      latency: Optional[float] = None, *,
                      load_report: "bytes | picker_pb2.OrcaLoadReport | None" = None,
                      timeout: Optional[float] = None) -> ReleaseState:
        """Releases a lease by id with a unary Release call; latency in seconds."""
        self._check_open()
        request = release_request(upstream, lease_id, outcome, latency,
                                  load_report_message(load_report))
        response = await call(self._stub.Release, request, self._timeout(timeout))
        return ReleaseState(response.state)

    async def flush(self) -> None:
        """Stream mode: sends the queued releases now. No-op otherwise."""
        if self._stream is not None:
            await self._stream.flush()

    async def close(self) -> None:
        """As picker.Client.close."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            await self._stream.close(self._options.deadline, CLOSE_WAIT)
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _timeout(self, timeout: Optional[float]) -> float:
        if timeout is None:
            return self._options.deadline
        if not timeout > 0:
            raise ValueError("timeout: must be positive seconds, got %r" % (timeout,))
        return timeout

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("Client: closed")

    async def _pick(self, args: PickArgs, also_exclude: Sequence[str],
                    timeout: Optional[float]) -> AsyncLease:
        self._check_open()
        request = args.to_proto(also_exclude, self._options)
        seconds = self._timeout(timeout)
        if self._stream is not None:
            response = await self._stream.pick(request, seconds)
        else:
            response = await call(self._stub.Pick, request, seconds)
        return AsyncLease(self, args.upstream, response)

    async def _release_lease(self, upstream: str, lease_id: int, outcome: Outcome,
                             latency: float,
                             load_report: Optional[picker_pb2.OrcaLoadReport] = None
                             ) -> ReleaseState:
        if self._stream is not None and not self._closed:
            self._stream.queue_release(
                release_request(upstream, lease_id, outcome, latency, load_report))
            return ReleaseState.QUEUED
        return await self.release(upstream, lease_id, outcome, latency, load_report=load_report)
