"""The exceptions of picker-client: one per gRPC status the API answers.

Every exception is a :class:`PickerError` that carries the gRPC ``code``
(a :class:`grpc.StatusCode`) and the server's ``details``, which name the
field at fault (``upstream.load_balancer.maglev.table_size: must be a prime
number``). Catch :class:`PickerError` for all of them, or a subclass for one
case::

    try:
        lease = client.pick("users")
    except picker.UnavailableError:
        ...  # no target can be picked, or the server cannot be reached
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import grpc


class PickerError(Exception):
    """A call to picker failed; ``code`` is its gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(details)
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return "%s: %s" % (self.code.name, self.details)


class InvalidArgumentError(PickerError, ValueError):
    """A request field is wrong; ``details`` names it."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(PickerError, LookupError):
    """Unknown upstream or target, or a lease id never issued."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(PickerError):
    """An upstream of that name exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class UnavailableError(PickerError):
    """No target can be picked, or the server cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(PickerError, TimeoutError):
    """No answer within the deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhaustedError(PickerError):
    """A limit was reached (max_active_requests, leases, message size, ...)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnauthenticatedError(PickerError):
    """An admin call without the right ``authorization: Bearer`` token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(PickerError):
    """The caller may not make this call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPreconditionError(PickerError):
    """The call does not fit the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


_BY_CODE: Dict[grpc.StatusCode, Type[PickerError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        UnavailableError,
        DeadlineExceededError,
        ResourceExhaustedError,
        UnauthenticatedError,
        PermissionDeniedError,
        FailedPreconditionError,
    )
}
_BY_NUMBER: Dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def error_for(code: grpc.StatusCode, details: str) -> PickerError:
    """The exception for a gRPC status: its subclass, or PickerError itself."""
    cls = _BY_CODE.get(code, PickerError)
    return cls(details, code)


def error_for_number(number: int, details: str) -> PickerError:
    """The exception for a numeric gRPC code, as PickStream answers carry it."""
    return error_for(_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN), details)


def from_rpc_error(error: grpc.RpcError) -> PickerError:
    """Converts what grpcio raised (a grpc.Call, sync or aio)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return error_for(code or grpc.StatusCode.UNKNOWN, details or "")
