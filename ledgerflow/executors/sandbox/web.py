"""HTTP requests the http.request built-in may make: to allow-listed hosts at public addresses.

Every hop (the first request and each redirect) is checked the same way before it is sent: an
http or https URL, a host on ``http_allowed_hosts``, and every address the host resolves to
public (or inside ``http_allowed_networks``). The connection then goes to the address that was
checked, with the host name in the ``Host`` header and TLS's SNI and certificate check, so a
DNS answer that changes between the check and the connection (DNS rebinding) is never used.
Redirects are followed here, not by httpx, so each one is checked; the whole request, body
included, has one deadline, and the body is read as a stream and cut off at its size limit.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Any

import httpx

from ledgerflow.errors import ApplicationError
from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.settings import BuiltinSettings, env_name, normal_host

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

BUILTIN = "http.request"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Request headers not carried to another origin by a redirect."""
NAT64 = IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: its last 32 bits are the IPv4 address a gateway connects to."""


@dataclass(frozen=True)
class Request:
    """One hop of an http.request call."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    json_body: Any = None

    @classmethod
    def from_input(cls, input: dict[str, Any]) -> Request:
        method = str(input.get("method", "GET")).upper()
        if method not in METHODS:
            raise Refused(BUILTIN, f"method {method!r} is not one of {', '.join(sorted(METHODS))}")
        headers = {str(k): str(v) for k, v in (input.get("headers") or {}).items()}
        if any(name.lower() == "host" for name in headers):
            raise Refused(BUILTIN, "the Host header is set from the URL, not from the input")
        raw_url = input.get("url")
        if not isinstance(raw_url, str):
            raise Refused(BUILTIN, "the input has no 'url' string")
        try:
            url = httpx.URL(raw_url)
        except httpx.InvalidURL as exc:
            raise Refused(BUILTIN, f"invalid URL: {exc}") from None
        return cls(method, url, headers, input.get("json"))

    def redirected(self, status: int, location: str) -> Request:
        """The next hop of a redirect, as browsers and httpx make it."""
        url = self.url.join(location)
        method, body = self.method, self.json_body
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
        headers = self.headers
        if _origin(url) != _origin(self.url):
            headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
        return replace(self, method=method, url=url, headers=headers, json_body=body)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any

    def as_output(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body}


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to for a TCP connection (the system resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ip_address(info[4][0]) for info in infos))


class HttpSandbox:
    """Makes http.request calls within the worker's settings."""

    def __init__(self, settings: BuiltinSettings, resolver: Resolver = resolve) -> None:
        self.settings = settings
        self.resolver = resolver

    async def request(self, input: dict[str, Any]) -> Response:
        """The final response of ``input``'s request, or ``Refused`` for the first hop the
        sandbox does not allow (that hop is not sent)."""
        request = Request.from_input(input)
        timeout = self._timeout(input.get("timeout"))
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(request, timeout)
        except TimeoutError:
            # Not a TimeoutError: the runner would take it for the activity's own timeout.
            raise ApplicationError(
                f"{BUILTIN}: no complete response within {timeout} s "
                f"(the input's 'timeout', at most {env_name('http_timeout')})",
                type="HttpTimeout",
            ) from None

    def _timeout(self, requested: Any) -> float:
        cap = self.settings.http_timeout
        if requested is None:
            return cap
        if isinstance(requested, bool) or not isinstance(requested, int | float) or requested <= 0:
            raise Refused(BUILTIN, f"timeout {requested!r} is not a positive number of seconds")
        return min(float(requested), cap)

    async def _follow(self, request: Request, timeout: float) -> Response:
        async with httpx.AsyncClient(
            verify=self._tls(), trust_env=False, timeout=timeout, follow_redirects=False
        ) as client:
            for _ in range(self.settings.http_max_redirects + 1):
                address = await self._checked_address(request.url)
                response = await client.send(_pinned(client, request, address), stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code not in REDIRECTS or location is None:
                        return await self._read(response)
                finally:
                    await response.aclose()
                request = self._next_hop(request, response.status_code, location)
        raise Refused(
            BUILTIN,
            f"more than {self.settings.http_max_redirects} redirects "
            f"(setting {env_name('http_max_redirects')})",
        )

    def _tls(self) -> ssl.SSLContext | bool:
        """What https checks certificates against (the host name of the URL, never the address)."""
        ca_file = self.settings.http_ca_file
        return ssl.create_default_context(cafile=ca_file) if ca_file is not None else True

    def _next_hop(self, request: Request, status: int, location: str) -> Request:
        try:
            following = request.redirected(status, location)
        except httpx.InvalidURL as exc:
            raise Refused(BUILTIN, f"redirect to an invalid URL: {exc}") from None
        if request.url.scheme == "https" and following.url.scheme == "http":
            raise Refused(BUILTIN, f"redirect from https to plain http ({following.url}) is not followed")
        return following

    async def _checked_address(self, url: httpx.URL) -> IPAddress:
        """The address to connect to for ``url``, or ``Refused`` naming what is not allowed."""
        if url.scheme not in DEFAULT_PORTS:
            raise Refused(BUILTIN, f"URL scheme {url.scheme!r} is not http or https")
        host = normal_host(url.raw_host.decode("ascii"))
        if not self._host_allowed(host):
            raise Refused(BUILTIN, f"host {host!r} is not allowed (setting {env_name('http_allowed_hosts')})")
        port = url.port or DEFAULT_PORTS[url.scheme]
        try:
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise ApplicationError(
                f"{BUILTIN}: cannot resolve {host!r}: {exc}", type="HttpResolveError"
            ) from None
        if not addresses:
            raise ApplicationError(f"{BUILTIN}: {host!r} resolves to no address", type="HttpResolveError")
        for address in addresses:
            self._check_address(host, address)
        return addresses[0]

    def _host_allowed(self, host: str) -> bool:
        for allowed in self.settings.http_allowed_hosts:
            if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return True
        return False

    def _check_address(self, host: str, address: IPAddress) -> None:
        for seen in _connected_forms(address):
            kind = non_public_kind(seen)
            if kind is not None and not any(seen in net for net in self.settings.http_allowed_networks):
                raise Refused(
                    BUILTIN,
                    f"host {host!r} resolves to {seen}, a {kind} address "
                    f"(setting {env_name('http_allowed_networks')} allows a range explicitly)",
                )

    async def _read(self, response: httpx.Response) -> Response:
        """The response with its body, read until ``http_max_body_bytes`` at most."""
        limit = self.settings.http_max_body_bytes
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise Refused(BUILTIN, f"the response is {encoding}-encoded; only uncompressed bodies are read")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limit:
                raise self._too_large(limit)
        return Response(response.status_code, dict(response.headers), _decoded(bytes(body), response))

    @staticmethod
    def _too_large(limit: int) -> Refused:
        return Refused(
            BUILTIN, f"the response body is over {limit} bytes (setting {env_name('http_max_body_bytes')})"
        )


def non_public_kind(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is (loopback, link-local, ...), or None
    when it is a public unicast address."""
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        # deprecated IPv6 site-local (fec0::/10): private in practice, "global" to ipaddress
        ("site-local", getattr(address, "is_site_local", False)),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, matches in checks if matches), None)


def _connected_forms(address: IPAddress) -> Iterator[IPAddress]:
    """``address`` and the IPv4 address it carries, if any: an IPv4-mapped address is that IPv4
    address; a 6to4 or NAT64 one reaches it through a gateway, so both are checked."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            yield address.ipv4_mapped
            return
        if address.sixtofour is not None:
            yield address.sixtofour
        if address in NAT64:
            yield IPv4Address(int(address) & 0xFFFFFFFF)
    yield address


def _pinned(client: httpx.AsyncClient, request: Request, address: IPAddress) -> httpx.Request:
    """``request`` sent to ``address``, with its host name in the Host header and TLS's SNI."""
    headers = {**request.headers, "Host": request.url.netloc.decode("ascii"), "Accept-Encoding": "identity"}
    host = request.url.raw_host.decode("ascii")
    extensions = {"sni_hostname": host} if request.url.scheme == "https" else {}
    return client.build_request(
        request.method,
        request.url.copy_with(host=str(address)),
        headers=headers,
        json=request.json_body,
        extensions=extensions,
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _decoded(body: bytes, response: httpx.Response) -> Any:
    """The body as JSON when it parses, else as text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(response.encoding or "utf-8", errors="replace")
