"""A synchronous client of picker's control plane (picker.v1.Admin).

Answers are the picker.v1 messages themselves (picker.v1.admin_pb2), typed
by the generated .pyi files::

    admin = picker.AdminClient("127.0.0.1:50052", token="s3cret")
    admin.create_upstream(admin_pb2.Upstream(name="users"))
    admin.put_target("users", "10.0.0.1:8080", weight=100)

With ``token`` (or ``token_file``), every call sends ``authorization:
Bearer <token>``, as a server started with --admin-token-file requires.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import grpc

from picker._common import Tls
from picker.client import call, make_channel
from picker.v1 import admin_pb2, admin_pb2_grpc

Override = Union[str, "admin_pb2.SetTargetHealthRequest.Override"]


def read_token(token: Optional[str], token_file: Optional[str]) -> Optional[str]:
    if token is not None and token_file is not None:
        raise ValueError("token and token_file: give one, not both")
    if token_file is not None:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise ValueError("token_file: %s holds no token" % token_file)
    if token is not None and (not token or any(c in token for c in "\r\n")):
        raise ValueError("token: must be one non-empty line")
    return token


class AdminClient:
    """picker.v1.Admin at ``address`` (default admin listener 127.0.0.1:50052).
    deadline: seconds each call may take. Errors raise picker.PickerError
    subclasses (InvalidArgumentError naming the field, NotFoundError,
    AlreadyExistsError, UnauthenticatedError, ...)."""

    def __init__(self, address: Optional[str] = "127.0.0.1:50052", *,
                 channel: Optional[grpc.Channel] = None, tls: "Tls | bool" = False,
                 token: Optional[str] = None, token_file: Optional[str] = None,
                 deadline: float = 5.0, channel_options: Sequence[Tuple[str, Any]] = ()) -> None:
        if not deadline > 0:
            raise ValueError("deadline: must be positive seconds, got %r" % (deadline,))
        if channel is not None and address == "127.0.0.1:50052":
            address = None
        token = read_token(token, token_file)
        self._metadata = (("authorization", "Bearer " + token),) if token else None
        self._deadline = deadline
        self._channel, self._owns_channel = make_channel(address, channel, tls, channel_options)
        self._stub = admin_pb2_grpc.AdminStub(self._channel)

    def _call(self, name: str, request: Any) -> Any:
        return call(getattr(self._stub, name), request, self._deadline, self._metadata)

    def create_upstream(self, upstream: admin_pb2.Upstream) -> admin_pb2.Upstream:
        return self._call("CreateUpstream", admin_pb2.CreateUpstreamRequest(upstream=upstream))

    def get_upstream(self, name: str) -> admin_pb2.Upstream:
        return self._call("GetUpstream", admin_pb2.GetUpstreamRequest(name=name))

    def _all_pages(self, name: str, request: Any, field: str) -> list:
        """Follows next_page_token (the lists come in pages, AIP-158) and
        returns every entry of `field`."""
        out: list = []
        while True:
            response = self._call(name, request)
            out.extend(getattr(response, field))
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token

    def list_upstreams(self) -> List[admin_pb2.Upstream]:
        """Every upstream, by name (all pages)."""
        return self._all_pages("ListUpstreams", admin_pb2.ListUpstreamsRequest(page_size=1000),
                               "upstreams")

    def update_upstream(self, upstream: admin_pb2.Upstream) -> admin_pb2.Upstream:
        return self._call("UpdateUpstream", admin_pb2.UpdateUpstreamRequest(upstream=upstream))

    def delete_upstream(self, name: str) -> None:
        self._call("DeleteUpstream", admin_pb2.DeleteUpstreamRequest(name=name))

    def put_target(self, upstream: str, address: str, *, weight: Optional[int] = None,
                   zone: Optional[str] = None, hash_key: Optional[str] = None) -> admin_pb2.Target:
        """Adds a target, or updates the one at `address`: arguments left
        None keep their stored values."""
        target = admin_pb2.Target(address=address)
        if weight is not None:
            target.weight = weight
        if zone is not None:
            target.zone = zone
        if hash_key is not None:
            target.hash_key = hash_key
        return self._call("PutTarget", admin_pb2.PutTargetRequest(upstream=upstream, target=target))

    def delete_target(self, upstream: str, address: str) -> None:
        self._call("DeleteTarget", admin_pb2.DeleteTargetRequest(upstream=upstream, address=address))

    def replace_targets(self, upstream: str,
                        targets: Iterable[Union[str, admin_pb2.Target]],
                        allow_empty: bool = False) -> List[admin_pb2.Target]:
        """Swaps the whole target list in one atomic write; a str is an address.

        An empty list removes every target and is refused (INVALID_ARGUMENT)
        unless allow_empty is True. Returns the stored list (its first page,
        then the rest through ListTargets)."""
        given = [admin_pb2.Target(address=t) if isinstance(t, str) else t for t in targets]
        request = admin_pb2.ReplaceTargetsRequest(upstream=upstream, targets=given,
                                                  allow_empty=allow_empty)
        response = self._call("ReplaceTargets", request)
        stored = list(response.targets)
        if response.next_page_token:
            rest = admin_pb2.ListTargetsRequest(upstream=upstream, page_size=1000,
                                                page_token=response.next_page_token)
            stored.extend(self._all_pages("ListTargets", rest, "targets"))
        return stored

    def list_targets(self, upstream: str) -> List[admin_pb2.Target]:
        """Every target of `upstream`, in host-set order (all pages)."""
        request = admin_pb2.ListTargetsRequest(upstream=upstream, page_size=1000)
        return self._all_pages("ListTargets", request, "targets")

    def set_target_health(self, upstream: str, address: str, override: Override) -> admin_pb2.TargetHealth:
        """Forces a target HEALTHY or UNHEALTHY until CLEAR (names or enum values)."""
        value = admin_pb2.SetTargetHealthRequest.Override.Value(override) if isinstance(override, str) else override
        request = admin_pb2.SetTargetHealthRequest(upstream=upstream, address=address, override=value)
        return self._call("SetTargetHealth", request).target

    def get_upstream_health(self, name: str) -> admin_pb2.UpstreamHealth:
        """The upstream's health with every target's (all pages)."""
        request = admin_pb2.GetUpstreamHealthRequest(name=name, page_size=1000)
        health = self._call("GetUpstreamHealth", request)
        while health.next_page_token:
            request.page_token = health.next_page_token
            page = self._call("GetUpstreamHealth", request)
            health.targets.extend(page.targets)
            health.next_page_token = page.next_page_token
        return health

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
