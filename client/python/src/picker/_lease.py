"""The part of a lease that the sync and asyncio clients share."""

from __future__ import annotations

from typing import Optional, Tuple

from picker._common import Outcome, SetCookie, Stopwatch, load_report_message, seconds
from picker.v1 import picker_pb2


class LeaseBase:
    """An open lease on a target: the chosen target's active-request count
    stays up by one until the lease is released (or its TTL passes)."""

    def __init__(self, upstream: str, response: picker_pb2.PickResponse) -> None:
        #: The upstream picked from.
        self.upstream: str = upstream
        #: The chosen target, ``host:port``: send the request there.
        self.target: str = response.target
        #: The chosen target's zone.
        self.zone: str = response.zone
        #: The lease's id, for releasing it by id (Client.release).
        self.lease_id: int = response.lease_id
        #: Seconds the server keeps the lease open without a release.
        self.lease_ttl: float = seconds(response.lease_ttl)
        #: The request hash the server used (consistent-hashing strategies).
        self.hash: Optional[int] = response.hash if response.HasField("hash") else None
        #: Cookies to set on the response (Cookie hash policy with a ttl).
        self.set_cookies: Tuple[SetCookie, ...] = tuple(
            SetCookie(c.name, c.value, seconds(c.ttl), c.path) for c in response.set_cookies
        )
        self._outcome = Outcome.SUCCESS
        self._outcome_set = False
        self._latency: Optional[float] = None
        self._load_report: Optional[picker_pb2.OrcaLoadReport] = None
        self._stopwatch = Stopwatch()
        self._open = True

    @property
    def valid(self) -> bool:
        """True while the lease is held (not yet released or detached)."""
        return self._open

    @property
    def outcome(self) -> Outcome:
        """The outcome the release reports. Default SUCCESS; leaving a
        ``with`` block by an exception makes it FAILURE (TIMEOUT for a
        TimeoutError) unless it was set to something else than SUCCESS."""
        return self._outcome

    @outcome.setter
    def outcome(self, value: Outcome) -> None:
        if not isinstance(value, Outcome):
            raise TypeError("outcome: must be a picker.Outcome, got %r" % (value,))
        self._outcome = value
        self._outcome_set = True

    @property
    def latency(self) -> float:
        """Seconds the release reports: as set, else the time since the pick."""
        return self._latency if self._latency is not None else self._stopwatch.elapsed()

    @latency.setter
    def latency(self, value: float) -> None:
        if not value >= 0:
            raise ValueError("latency: must be seconds >= 0, got %r" % (value,))
        self._latency = float(value)

    @property
    def load_report(self) -> Optional[picker_pb2.OrcaLoadReport]:
        """The backend's ORCA load report the release passes on (it feeds the
        upstream's weighted_round_robin strategy), or None. Set it to the
        bytes of the backend's ``endpoint-load-metrics-bin`` trailer as they
        are (a serialized xds.data.orca.v3.OrcaLoadReport), or to a
        picker.v1.OrcaLoadReport."""
        return self._load_report

    @load_report.setter
    def load_report(self, value: "bytes | picker_pb2.OrcaLoadReport | None") -> None:
        self._load_report = load_report_message(value)

    def _take(self) -> bool:
        """Marks the lease closed; True if it was open (this caller releases it)."""
        was_open, self._open = self._open, False
        return was_open

    def _exit_outcome(self, error: Optional[BaseException]) -> None:
        if error is None or (self._outcome_set and self._outcome is not Outcome.SUCCESS):
            return
        self._outcome = Outcome.TIMEOUT if isinstance(error, TimeoutError) else Outcome.FAILURE

    def __repr__(self) -> str:
        return "<%s upstream=%r target=%r lease_id=%d %s>" % (
            type(self).__name__,
            self.upstream,
            self.target,
            self.lease_id,
            "open" if self._open else "closed",
        )
