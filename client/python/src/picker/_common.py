"""What the sync and asyncio clients share: value types, options and the
conversions between them and picker.v1 messages."""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import List, Mapping, Optional, Sequence

import grpc
from google.protobuf import duration_pb2

from picker.v1 import picker_pb2


class Outcome(enum.Enum):
    """How the request sent to a picked target ended. FAILURE and TIMEOUT
    count towards passive health (ejection after consecutive failures)."""

    SUCCESS = picker_pb2.ReleaseRequest.SUCCESS
    FAILURE = picker_pb2.ReleaseRequest.FAILURE
    TIMEOUT = picker_pb2.ReleaseRequest.TIMEOUT


class ReleaseState(enum.Enum):
    """What a release did."""

    #: The lease was open and is now released.
    RELEASED = picker_pb2.ReleaseResponse.RELEASED
    #: The lease had been released before; nothing changed.
    ALREADY_RELEASED = picker_pb2.ReleaseResponse.ALREADY_RELEASED
    #: The lease had expired (its TTL passed); nothing changed.
    EXPIRED = picker_pb2.ReleaseResponse.EXPIRED
    #: Stream mode: queued, it goes to the server with the next pick or
    #: flush (the server does not answer releases on a stream).
    QUEUED = -1


@dataclasses.dataclass(frozen=True)
class SetCookie:
    """A cookie the server asks the client to set (Cookie hash policy with a ttl)."""

    name: str
    value: str
    ttl: float  # seconds
    path: str


@dataclasses.dataclass(frozen=True)
class Tls:
    """TLS for the channel, PEM bytes. No root_certs: the system's roots.
    cert_chain and private_key (both or neither): mutual TLS."""

    root_certs: Optional[bytes] = None
    cert_chain: Optional[bytes] = None
    private_key: Optional[bytes] = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_chain is None) != (self.private_key is None):
            raise ValueError("tls.cert_chain and tls.private_key: give both or neither")
        return grpc.ssl_channel_credentials(self.root_certs, self.private_key, self.cert_chain)


@dataclasses.dataclass
class RetryResult:
    """What pick_with_retry did."""

    #: The outcome of the last attempt (SUCCESS if any attempt succeeded).
    outcome: Outcome = Outcome.FAILURE
    #: Attempts made.
    attempts: int = 0
    #: Targets tried, in order.
    tried: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class PickArgs:
    """One pick's request: the upstream and the attributes hash policies read."""

    upstream: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cookies: Mapping[str, str] = dataclasses.field(default_factory=dict)
    query_params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source_ip: str = ""
    filter_state: Mapping[str, str] = dataclasses.field(default_factory=dict)
    client_zone: str = ""
    hash: Optional[int] = None
    exclude: Sequence[str] = ()
    #: Who is calling, over the client's own (see Options).
    client_service: str = ""
    client_tags: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_proto(self, also_exclude: Sequence[str] = (),
                 options: Optional["Options"] = None) -> picker_pb2.PickRequest:
        if not isinstance(self.upstream, str) or not self.upstream:
            raise ValueError("upstream: is required (the name of an upstream)")
        request = picker_pb2.PickRequest(
            upstream=self.upstream,
            client_zone=self.client_zone,
            exclude=[*self.exclude, *also_exclude],
        )
        attributes = request.attributes
        attributes.headers.update(self.headers)
        attributes.cookies.update(self.cookies)
        attributes.query_params.update(self.query_params)
        attributes.filter_state.update(self.filter_state)
        attributes.source_ip = self.source_ip
        if self.hash is not None:
            request.hash = self.hash
        request.client_service = self.client_service or (options.client_service if options else "")
        if options is not None:
            request.client_tags.update(options.client_tags)
        request.client_tags.update(self.client_tags)
        return request


@dataclasses.dataclass(frozen=True)
class Options:
    """Client options, checked once (a bad value raises ValueError naming it)."""

    deadline: float = 1.0
    max_attempts: int = 3
    use_stream: bool = False
    release_flush_interval: float = 0.010
    max_release_batch: int = 256
    #: Who is calling, sent with every pick (PickRequest.client_service and
    #: client_tags) for upstreams with per-client configurations.
    client_service: str = ""
    client_tags: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.deadline > 0:
            raise ValueError("deadline: must be positive seconds, got %r" % (self.deadline,))
        if self.max_attempts < 1:
            raise ValueError("max_attempts: must be at least 1, got %r" % (self.max_attempts,))
        if not self.release_flush_interval >= 0:
            raise ValueError(
                "release_flush_interval: must not be negative, got %r" % (self.release_flush_interval,)
            )
        if self.max_release_batch < 1:
            raise ValueError("max_release_batch: must be at least 1, got %r" % (self.max_release_batch,))


def pick_args(upstream: "str | PickArgs", attributes: Mapping[str, object]) -> PickArgs:
    """PickArgs from an upstream name and pick()'s keyword arguments (None
    means not given); an unknown keyword is a TypeError."""
    fields = {f.name for f in dataclasses.fields(PickArgs)} - {"upstream"}
    unknown = sorted(set(attributes) - fields)
    if unknown:
        raise TypeError("pick() got unknown argument(s): %s" % ", ".join(unknown))
    given = {k: v for k, v in attributes.items() if v is not None}
    if isinstance(upstream, PickArgs):
        return dataclasses.replace(upstream, **given)  # type: ignore[arg-type]
    return PickArgs(upstream=upstream, **given)  # type: ignore[arg-type]


def as_outcome(value: "Outcome | bool") -> Outcome:
    """An attempt's result: an Outcome, or True for SUCCESS and False for FAILURE."""
    if isinstance(value, Outcome):
        return value
    if isinstance(value, bool):
        return Outcome.SUCCESS if value else Outcome.FAILURE
    raise TypeError("attempt: must return a picker.Outcome or a bool, got %r" % (value,))


def seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def load_report_message(
    value: "bytes | picker_pb2.OrcaLoadReport | None",
) -> Optional[picker_pb2.OrcaLoadReport]:
    """An ORCA load report from the bytes of an ``endpoint-load-metrics-bin``
    trailer (parsed as they are) or a picker.v1.OrcaLoadReport; None stays None."""
    if value is None or isinstance(value, picker_pb2.OrcaLoadReport):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        report = picker_pb2.OrcaLoadReport()
        try:
            report.ParseFromString(bytes(value))
        except Exception as error:  # google.protobuf.message.DecodeError
            raise ValueError("load_report: not a serialized ORCA OrcaLoadReport: %s" % error)
        return report
    raise TypeError(
        "load_report: must be bytes or a picker.v1.OrcaLoadReport, got %r" % (value,))


def release_request(
    upstream: str, lease_id: int, outcome: Outcome, latency: Optional[float],
    load_report: Optional[picker_pb2.OrcaLoadReport] = None,
) -> picker_pb2.ReleaseRequest:
    request = picker_pb2.ReleaseRequest(upstream=upstream, lease_id=lease_id, outcome=outcome.value)
    if latency is not None:
        nanos = max(0, int(latency * 1e9))
        request.latency.seconds, request.latency.nanos = divmod(nanos, 1_000_000_000)
    if load_report is not None:
        request.load_report.CopyFrom(load_report)
    return request


def channel_credentials(tls: "Tls | bool") -> Optional[grpc.ChannelCredentials]:
    if tls is True:
        return Tls().credentials()
    if isinstance(tls, Tls):
        return tls.credentials()
    if tls is False or tls is None:
        return None
    raise ValueError("tls: must be a picker.Tls, True or False, got %r" % (tls,))


class Stopwatch:
    """Monotonic time since a pick answered: the latency a release reports."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

