"""The synchronous client of picker's data plane (picker.v1.Picker).

::

    with picker.Client("127.0.0.1:50051") as client:
        with client.pick("users", headers={"x-user": "42"}) as lease:
            send_request_to(lease.target)
        # released on leaving the block, with the outcome (an exception is a
        # FAILURE) and the measured latency

A Client is thread-safe; a Lease belongs to one thread at a time.
"""

from __future__ import annotations

import logging
import warnings
from types import TracebackType
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import grpc

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
from picker._stream import StreamPicker
from picker.errors import FailedPreconditionError, PickerError, UnavailableError, from_rpc_error
from picker.v1 import picker_pb2, picker_pb2_grpc

_log = logging.getLogger("picker")
# How long close() waits for the server to end a stream that has answered
# picks, after the last releases (they count as released, not abandoned,
# only once it has read them). A stream that never answered waits `deadline`.
CLOSE_WAIT = 5.0
_R = TypeVar("_R")


def call(method: Callable[..., _R], request: Any, timeout: float, metadata: Any = None) -> _R:
    """One unary RPC; grpcio's RpcError becomes a PickerError."""
    try:
        return method(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from e


def make_channel(address: Optional[str], channel: Optional[grpc.Channel], tls: "Tls | bool",
                 channel_options: Sequence[Tuple[str, Any]]) -> Tuple[grpc.Channel, bool]:
    """The channel to use and whether the client owns (and closes) it."""
    if channel is not None:
        if address is not None:
            raise ValueError("address and channel: give one, not both")
        return channel, False
    if not isinstance(address, str) or not address:
        raise ValueError("address: is required (host:port, or a gRPC target URI)")
    credentials = channel_credentials(tls)
    if credentials is None:
        return grpc.insecure_channel(address, options=channel_options), True
    return grpc.secure_channel(address, credentials, options=channel_options), True


class Lease(LeaseBase):
    """An open lease; a context manager that releases it on exit. Without
    ``with``, call release() (or detach()): a lease left open is released by
    the server only when its TTL passes."""

    def __init__(self, client: "Client", upstream: str, response: picker_pb2.PickResponse) -> None:
        super().__init__(upstream, response)
        self._client = client

    def release(self) -> ReleaseState:
        """Releases now with the outcome and latency; QUEUED in stream mode.
        A second call does nothing and answers ALREADY_RELEASED. Raises a
        PickerError if the RPC fails (the lease then counts as released here,
        and the server expires it after its TTL)."""
        if not self._take():
            return ReleaseState.ALREADY_RELEASED
        return self._client._release_lease(self.upstream, self.lease_id, self.outcome, self.latency,
                                           self.load_report)

    def detach(self) -> int:
        """Gives the lease up without releasing it; returns its id (release
        it later with Client.release, or let its TTL pass)."""
        self._take()
        return self.lease_id

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if not self.valid:
            return
        self._exit_outcome(exc)
        try:
            self.release()
        except PickerError as e:
            # The block's own exception matters more, and a lease whose
            # release is lost is expired by the server after its TTL.
            _log.warning("picker: release of lease %d on %s failed: %s", self.lease_id, self.upstream, e)

    def __del__(self) -> None:
        if getattr(self, "_open", False):
            warnings.warn("%r was never released (the server expires it after its TTL)" % self,
                          ResourceWarning, stacklevel=2)


class Retry:
    """The picks of one request's attempts; each excludes the targets tried
    before it (best effort, as Envoy's previous-hosts retry predicate)::

        for lease in client.retry("users"):
            with lease:
                if send_request_to(lease.target):
                    break
                lease.outcome = picker.Outcome.FAILURE
    """

    def __init__(self, client: "Client", args: PickArgs, max_attempts: int) -> None:
        self._client = client
        self._args = args
        self.max_attempts = max_attempts
        self.attempts = 0
        self.tried: List[str] = []

    def next(self) -> Lease:
        """The lease of the next attempt. FailedPreconditionError once
        max_attempts picks were made; a failed pick raises its error."""
        if self.attempts >= self.max_attempts:
            raise FailedPreconditionError("Retry: all %d attempts made (max_attempts)" % self.max_attempts)
        lease = self._client._pick(self._args, self.tried, None)
        self.attempts += 1
        self.tried.append(lease.target)
        return lease

    def __iter__(self) -> "Retry":
        return self

    def __next__(self) -> Lease:
        if self.attempts >= self.max_attempts:
            raise StopIteration
        return self.next()


class Client:
    """A client of picker's data plane at ``address`` (``host:port``), or over
    an existing ``channel``.

    deadline: seconds each RPC may take (a pick over the stream waits at most
    this long for its answer). max_attempts: picks per request for retry()
    and pick_with_retry(). use_stream: picks go over one PickStream and
    releases ride along with the next pick, or are flushed after
    release_flush_interval seconds or at max_release_batch queued. tls: a
    picker.Tls, or True for TLS with the system's roots. client_service and
    client_tags: who is calling, sent with every pick, for upstreams with
    per-client configurations (Kong Mesh's MeshService and MeshSubset
    policies). A bad value raises ValueError naming the argument.
    """

    def __init__(self, address: Optional[str] = None, *, channel: Optional[grpc.Channel] = None,
                 tls: "Tls | bool" = False, deadline: float = 1.0, max_attempts: int = 3,
                 use_stream: bool = False, release_flush_interval: float = 0.010,
                 max_release_batch: int = 256,
                 channel_options: Sequence[Tuple[str, Any]] = (), client_service: str = "",
                 client_tags: Optional[Mapping[str, str]] = None) -> None:
        self._options = Options(deadline, max_attempts, use_stream, release_flush_interval,
                                max_release_batch, client_service, dict(client_tags or {}))
        self._channel, self._owns_channel = make_channel(address, channel, tls, channel_options)
        self._stub = picker_pb2_grpc.PickerStub(self._channel)
        self._stream = StreamPicker(self._stub, self._options) if use_stream else None
        self._closed = False

    @property
    def options(self) -> Options:
        return self._options

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def pick(self, upstream: "str | PickArgs", *, headers: Optional[Mapping[str, str]] = None,
             cookies: Optional[Mapping[str, str]] = None,
             query_params: Optional[Mapping[str, str]] = None, source_ip: Optional[str] = None,
             filter_state: Optional[Mapping[str, str]] = None, client_zone: Optional[str] = None,
             hash: Optional[int] = None, exclude: Optional[Sequence[str]] = None,
             timeout: Optional[float] = None) -> Lease:
        """Picks a target of `upstream` and opens a lease on it. headers,
        cookies, query_params, source_ip and filter_state are the request's
        attributes that hash policies read; client_zone prefers that zone's
        targets; hash is a request hash to use directly; exclude lists
        targets to avoid. timeout overrides the client's deadline. Raises
        NotFoundError (unknown upstream), UnavailableError (no target can be
        picked, or no server), DeadlineExceededError, ..."""
        args = pick_args(upstream, dict(
            headers=headers, cookies=cookies, query_params=query_params, source_ip=source_ip,
            filter_state=filter_state, client_zone=client_zone, hash=hash, exclude=exclude))
        return self._pick(args, (), timeout)

    def retry(self, upstream: "str | PickArgs", **attributes: Any) -> Retry:
        """The attempts of one request (see Retry); attributes as for pick()."""
        return Retry(self, pick_args(upstream, attributes), self._options.max_attempts)

    def pick_with_retry(self, upstream: "str | PickArgs",
                        attempt: Callable[[Lease], "Outcome | bool"], **attributes: Any) -> RetryResult:
        """Runs `attempt` on picked targets until it returns SUCCESS (or
        True) or max_attempts picks were made; each pick excludes the targets
        tried, and each lease is released with the attempt's outcome (an
        exception releases it as FAILURE and propagates). A failed first pick
        raises; a later one ends the retries."""
        retry = self.retry(upstream, **attributes)
        result = RetryResult()
        while retry.attempts < retry.max_attempts:
            try:
                lease = retry.next()
            except PickerError:
                if result.attempts == 0:
                    raise
                break
            with lease:
                lease.outcome = as_outcome(attempt(lease))
            result = RetryResult(lease.outcome, retry.attempts, list(retry.tried))
            if lease.outcome is Outcome.SUCCESS:
                break
        return result

    def release(self, upstream: str, lease_id: int, outcome: Outcome = Outcome.SUCCESS,
                latency: Optional[float] = None, *,
                load_report: "bytes | picker_pb2.OrcaLoadReport | None" = None,
                timeout: Optional[float] = None) -> ReleaseState:
        """Releases a lease by id (one detached, or picked elsewhere) with a
        unary Release call; latency in seconds; load_report as
        Lease.load_report takes it."""
        self._check_open()
        request = release_request(upstream, lease_id, outcome, latency,
                                  load_report_message(load_report))
        response = call(self._stub.Release, request, self._timeout(timeout))
        return ReleaseState(response.state)

    def flush(self) -> None:
        """Stream mode: sends the queued releases now. No-op otherwise."""
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        """Sends the queued releases, ends the stream and closes the channel
        if the client made it. Leases still open can no longer be released
        through this client: those picked on the stream were released by the
        server when it ended (as abandoned), the others expire after their
        TTL (or release them by id with another client)."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.close(self._options.deadline, CLOSE_WAIT)
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _timeout(self, timeout: Optional[float]) -> float:
        if timeout is None:
            return self._options.deadline
        if not timeout > 0:
            raise ValueError("timeout: must be positive seconds, got %r" % (timeout,))
        return timeout

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("Client: closed")

    def _pick(self, args: PickArgs, also_exclude: Sequence[str], timeout: Optional[float]) -> Lease:
        self._check_open()
        request = args.to_proto(also_exclude, self._options)
        seconds = self._timeout(timeout)
        if self._stream is not None:
            response = self._stream.pick(request, seconds)
        else:
            response = call(self._stub.Pick, request, seconds)
        return Lease(self, args.upstream, response)

    def _release_lease(self, upstream: str, lease_id: int, outcome: Outcome,
                       latency: float,
                       load_report: Optional[picker_pb2.OrcaLoadReport] = None) -> ReleaseState:
        if self._stream is not None and not self._closed:
            self._stream.queue_release(
                release_request(upstream, lease_id, outcome, latency, load_report))
            return ReleaseState.QUEUED
        return self.release(upstream, lease_id, outcome, latency, load_report=load_report)
