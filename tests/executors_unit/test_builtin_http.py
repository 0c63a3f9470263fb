"""http.request reaches allow-listed hosts at public addresses only, within its time and size limits.

Real HTTP servers on loopback stand for the hosts: the tests allow 127.0.0.1 by
``http_allowed_networks`` where they need to reach one, and a second server on 127.0.0.2 (also
loopback, not allowed) stands for a private address a redirect points at. Each refusal is checked
for its reason and for the request the server did not get.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledgerflow.errors import ApplicationError
from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.web import BUILTIN, HttpSandbox, IPAddress, Request, non_public_kind
from tests.executors_unit.builtin_helpers import call

LOOPBACK: dict[str, Any] = {
    "http_allowed_hosts": ("127.0.0.1", "127.0.0.2"),
    "http_allowed_networks": ("127.0.0.1/32",),
}
"""Reach the server on 127.0.0.1 (and allow 127.0.0.2 as a host name only: its address is refused)."""


@dataclass
class Server:
    url: str
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(method, path, headers) of every request received."""

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (the sandbox cut a body or timed out) is expected here."""


@contextlib.contextmanager
def served(host: str, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    """A server on ``host`` (a free port) recording what it gets, stopped on leaving."""
    server_record = Server("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            server_record.requests.append((self.command, self.path, dict(self.headers)))
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/loop":
                self.send_response(302)
                self.send_header("location", "/loop")
                self.send_header("content-length", "0")
                self.end_headers()
            elif url.path == "/redirect":
                self.send_response(int(query.get("status", "302")))
                self.send_header("location", query["to"])
                self.send_header("content-length", "0")
                self.end_headers()
            elif url.path == "/big":
                self._body(b"x" * int(query["n"]), declare="declare" in query)
            elif url.path == "/slow":
                time.sleep(float(query["s"]))
                self._body(b"late")
            elif url.path == "/drip":
                self.send_response(200)
                self.end_headers()
                for _ in range(int(query["n"])):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif url.path == "/gzip":
                self.send_response(200)
                self.send_header("content-encoding", "gzip")
                self.end_headers()
            else:
                self._body(b'{"ok": true}', content_type="application/json")

        def _body(self, body: bytes, declare: bool = True, content_type: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            if declare:
                self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = QuietServer((host, 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server_record.url = f"{'https' if tls else 'http'}://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server_record
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with served("127.0.0.1") as running:
        yield running


@pytest.fixture
def private_server() -> Iterator[Server]:
    """A server at an address no test allows: it must never get a request."""
    with served("127.0.0.2") as running:
        yield running


async def refused(input: dict[str, Any], **sandbox: Any) -> str:
    with pytest.raises(Refused) as refusal:
        await call("http.request", input, **sandbox)
    assert refusal.value.non_retryable
    return refusal.value.reason


async def test_an_allowed_host_at_an_allowed_address(server: Server) -> None:
    output = await call("http.request", {"url": f"{server.url}/hello", "headers": {"x-a": "1"}}, **LOOPBACK)
    assert output["status"] == 200 and output["body"] == {"ok": True}
    [(method, path, headers)] = server.requests
    assert (method, path, headers["x-a"]) == ("GET", "/hello", "1")


async def test_no_allowed_hosts_refuses_every_url(server: Server) -> None:
    reason = await refused({"url": f"{server.url}/"}, http_allowed_networks=("127.0.0.1/32",))
    assert "not allowed" in reason and "LEDGERFLOW_HTTP_ALLOWED_HOSTS" in reason
    assert server.requests == []


async def test_loopback_without_the_allow_setting(server: Server) -> None:
    reason = await refused({"url": f"{server.url}/"}, http_allowed_hosts=("127.0.0.1",))
    assert "127.0.0.1, a loopback address" in reason and "LEDGERFLOW_HTTP_ALLOWED_NETWORKS" in reason
    assert server.requests == []


async def test_a_name_resolving_to_loopback(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    reason = await refused({"url": f"http://localhost:{port}/"}, http_allowed_hosts=("localhost",))
    assert "loopback address" in reason
    assert server.requests == []


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "[fe80::1]", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[fd00:ec2::254]"],
)
async def test_the_metadata_address_in_any_form(host: str) -> None:
    allowed = host.strip("[]")
    reason = await refused({"url": f"http://{host}/latest/meta-data/"}, http_allowed_hosts=(allowed,))
    assert "link-local" in reason or "private" in reason, reason


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),
        ("::1", "loopback"),
        ("fec0::1", "site-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("8.8.8.8", None),
        ("2606:4700::1", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert non_public_kind(ip_address(address)) == kind


async def test_every_resolved_address_is_checked() -> None:
    """A name with a public and a private address is refused: the connection could go to either."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address("8.8.8.8"), ip_address("10.0.0.7")]

    sandbox = HttpSandbox(_settings(http_allowed_hosts=("mixed.test",)), resolver)
    with pytest.raises(Refused, match=r"10\.0\.0\.7, a private address"):
        await sandbox.request({"url": "http://mixed.test/"})
    assert asked == ["mixed.test"]


async def test_the_connection_goes_to_the_checked_address(server: Server) -> None:
    """The name is resolved once, by the sandbox, and the request sent to that address with the
    name as Host: the system resolver never sees ``pinned.test`` (it could not resolve it)."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address("127.0.0.1")]

    port = int(server.url.rsplit(":", 1)[1])
    settings = _settings(http_allowed_hosts=("pinned.test",), http_allowed_networks=("127.0.0.1/32",))
    response = await HttpSandbox(settings, resolver).request({"url": f"http://pinned.test:{port}/x"})
    assert response.status == 200
    assert asked == ["pinned.test"]
    assert server.requests[0][2]["Host"] == f"pinned.test:{port}"


async def test_wildcard_hosts_match_subdomains_only() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("10.0.0.1")]  # refused later: the host check comes first

    sandbox = HttpSandbox(_settings(http_allowed_hosts=("*.example.com",)), resolver)
    with pytest.raises(Refused, match="private address"):
        await sandbox.request({"url": "http://api.example.com/"})
    for url in ("http://example.com/", "http://badexample.com/", "http://example.com.evil.org/"):
        with pytest.raises(Refused, match="is not allowed"):
            await sandbox.request({"url": url})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/"])
async def test_only_http_and_https(url: str) -> None:
    assert "is not http or https" in await refused({"url": url}, **LOOPBACK)


async def test_the_host_header_comes_from_the_url(server: Server) -> None:
    reason = await refused({"url": f"{server.url}/", "headers": {"Host": "internal"}}, **LOOPBACK)
    assert "Host header" in reason
    assert server.requests == []


async def test_a_redirect_is_followed_when_allowed(server: Server) -> None:
    target = urllib.parse.quote(f"{server.url}/final")
    output = await call("http.request", {"url": f"{server.url}/redirect?to={target}"}, **LOOPBACK)
    assert output["body"] == {"ok": True}
    assert server.paths() == [f"/redirect?to={target}", "/final"]


async def test_a_redirect_to_a_private_address_is_not_followed(
    server: Server, private_server: Server
) -> None:
    target = urllib.parse.quote(f"{private_server.url}/internal")
    reason = await refused({"url": f"{server.url}/redirect?to={target}"}, **LOOPBACK)
    assert "127.0.0.2, a loopback address" in reason
    assert len(server.requests) == 1
    assert private_server.requests == []


async def test_a_redirect_to_the_metadata_address_is_not_followed(server: Server) -> None:
    target = urllib.parse.quote("http://169.254.169.254/latest/meta-data/")
    allowed = {**LOOPBACK, "http_allowed_hosts": ("127.0.0.1", "169.254.169.254")}
    assert "link-local" in await refused({"url": f"{server.url}/redirect?to={target}"}, **allowed)


async def test_a_redirect_to_a_host_not_allowed(server: Server) -> None:
    target = urllib.parse.quote("http://elsewhere.example/")
    assert "'elsewhere.example' is not allowed" in await refused(
        {"url": f"{server.url}/redirect?to={target}"}, **LOOPBACK
    )


async def test_redirects_are_counted(server: Server) -> None:
    reason = await refused({"url": f"{server.url}/loop"}, **LOOPBACK, http_max_redirects=2)
    assert "more than 2 redirects" in reason
    assert len(server.requests) == 3


async def test_a_303_turns_a_post_into_a_get(server: Server) -> None:
    to = urllib.parse.quote("/after")
    await call(
        "http.request", {"url": f"{server.url}/redirect?status=303&to={to}", "method": "POST"}, **LOOPBACK
    )
    assert [method for method, _, _ in server.requests] == ["POST", "GET"]


def test_an_https_to_http_redirect_is_not_followed() -> None:
    sandbox = HttpSandbox(_settings())
    request = Request("GET", Request.from_input({"url": "https://a.example/"}).url, {})
    with pytest.raises(Refused, match="https to plain http"):
        sandbox._next_hop(request, 302, "http://a.example/")


def test_credentials_stay_with_their_origin() -> None:
    request = Request.from_input(
        {"url": "https://a.example/", "headers": {"Authorization": "x", "X-Id": "1"}}
    )
    assert request.redirected(302, "/next").headers == {"Authorization": "x", "X-Id": "1"}
    assert request.redirected(302, "https://b.example/").headers == {"X-Id": "1"}


@pytest.mark.parametrize("declare", [True, False])
async def test_an_oversized_body_is_refused(server: Server, declare: bool) -> None:
    query = "n=5000" + ("&declare=1" if declare else "")
    reason = await refused({"url": f"{server.url}/big?{query}"}, **LOOPBACK, http_max_body_bytes=1000)
    assert "over 1000 bytes" in reason and "LEDGERFLOW_HTTP_MAX_BODY_BYTES" in reason


async def test_a_body_at_the_limit_is_read(server: Server) -> None:
    output = await call(
        "http.request", {"url": f"{server.url}/big?n=1000"}, **LOOPBACK, http_max_body_bytes=1000
    )
    assert output["body"] == "x" * 1000


async def test_compressed_bodies_are_refused(server: Server) -> None:
    """A compressed body's size says nothing of what it expands to."""
    assert "gzip-encoded" in await refused({"url": f"{server.url}/gzip"}, **LOOPBACK)
    assert server.requests[0][2]["Accept-Encoding"] == "identity"


async def test_the_input_cannot_raise_the_timeout(server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(ApplicationError, match=r"within 0\.5 s") as failure:
        await call(
            "http.request", {"url": f"{server.url}/slow?s=3", "timeout": 60}, **LOOPBACK, http_timeout=0.5
        )
    assert failure.value.type == "HttpTimeout"
    assert time.monotonic() - started < 2.5


async def test_the_input_may_lower_the_timeout(server: Server) -> None:
    with pytest.raises(ApplicationError, match=r"within 0\.3 s"):
        await call("http.request", {"url": f"{server.url}/slow?s=3", "timeout": 0.3}, **LOOPBACK)


async def test_the_timeout_covers_a_body_that_keeps_trickling(server: Server) -> None:
    """Each byte comes well within a read timeout; the whole request still has one deadline."""
    started = time.monotonic()
    with pytest.raises(ApplicationError, match=r"within 0\.5 s"):
        await call("http.request", {"url": f"{server.url}/drip?n=30"}, **LOOPBACK, http_timeout=0.5)
    assert time.monotonic() - started < 2.5


def certificate(name: str, folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA file, and a server TLS context with a certificate for ``name`` that CA signed."""
    now = datetime.datetime.now(datetime.UTC)

    def signed(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )
        if subject == "test CA":
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = signed("test CA", ca_key, ca_name, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = signed(name, key, ca_name, ca_key)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.mark.parametrize("certified", ["pinned.test", "someone-else.test"])
async def test_https_checks_the_certificate_against_the_host_name(tmp_path: Path, certified: str) -> None:
    """Connected to the checked address, TLS still sends the URL's name (SNI) and checks the
    server's certificate against it: a certificate for another name is refused."""
    ca_file, tls = certificate(certified, tmp_path)

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")]

    settings = _settings(
        http_allowed_hosts=("pinned.test",), http_allowed_networks=("127.0.0.1/32",), http_ca_file=ca_file
    )
    with served("127.0.0.1", tls) as server:
        port = int(server.url.rsplit(":", 1)[1])
        request = HttpSandbox(settings, resolver).request({"url": f"https://pinned.test:{port}/x"})
        if certified == "pinned.test":
            assert (await request).body == {"ok": True}
            assert server.requests[0][2]["Host"] == f"pinned.test:{port}"
        else:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await request
            assert server.requests == []


def _settings(**sandbox: Any) -> Any:
    from ledgerflow.executors.sandbox.settings import BuiltinSettings

    return BuiltinSettings.model_validate({"builtins": [BUILTIN], **sandbox})
