"""picker-client: the Python client of picker, a stateful gRPC load balancer.

``picker.Client`` picks targets and releases them (``picker.aio.Client`` is
its asyncio twin), ``picker.AdminClient`` manages upstreams and targets, and
``picker.v1`` holds the generated messages and stubs.
"""

from picker._common import Outcome, PickArgs, ReleaseState, RetryResult, SetCookie, Tls
from picker import aio
from picker.admin import AdminClient
from picker.client import Client, Lease, Retry
from picker.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PickerError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "aio",
    "AdminClient",
    "AlreadyExistsError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Lease",
    "NotFoundError",
    "Outcome",
    "PermissionDeniedError",
    "PickArgs",
    "PickerError",
    "ReleaseState",
    "ResourceExhaustedError",
    "Retry",
    "RetryResult",
    "SetCookie",
    "Tls",
    "UnauthenticatedError",
    "UnavailableError",
]
