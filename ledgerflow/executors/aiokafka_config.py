"""The deployment's Kafka properties (``ledgerflow.kafkaprops``) as aiokafka arguments, for the
worker's clients: TLS, SASL PLAIN/SCRAM, and OAUTHBEARER by OIDC client credentials."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx
from aiokafka.abc import AbstractTokenProvider

from ledgerflow.config import Settings
from ledgerflow.kafkaprops import KafkaPropertiesError

log = logging.getLogger("ledgerflow.kafka")

_AIOKAFKA_APPLIED = {
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.scope",
    "client.id",
}


def client_options(settings: Settings) -> dict[str, Any]:
    """Where Kafka is and how to reach it, for any aiokafka client of this deployment."""
    return {"bootstrap_servers": settings.bootstrap, **aiokafka_options(settings.kafka_properties)}


def aiokafka_options(props: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client carrying the same security as ``props``.

    Properties aiokafka has no equivalent for are named in a warning, not silently dropped.
    """
    ignored = sorted(set(props) - _AIOKAFKA_APPLIED)
    security = [name for name in ignored if name.startswith(("ssl.", "sasl.", "security."))]
    if security:
        # a worker that checked less than the other components (no CRL, other ciphers) or
        # failed to authenticate in some confusing way would be worse than one that stops
        raise KafkaPropertiesError(
            "security properties the worker's Kafka client (aiokafka) cannot apply: " + ", ".join(security)
        )
    if ignored:
        log.warning("Kafka properties the worker's aiokafka clients do not apply: %s", ", ".join(ignored))
    protocol = props.get("security.protocol", "plaintext").upper()
    options: dict[str, Any] = {"security_protocol": protocol}
    if "client.id" in props:
        options["client_id"] = props["client.id"]
    if protocol in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = _ssl_context(props)
    if protocol.startswith("SASL"):
        mechanism = (props.get("sasl.mechanism") or props.get("sasl.mechanisms") or "GSSAPI").upper()
        options["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = ClientCredentialsTokenProvider.from_props(props)
        else:
            options["sasl_plain_username"] = props.get("sasl.username")
            options["sasl_plain_password"] = props.get("sasl.password")
    return options


def _ssl_context(props: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=props.get("ssl.ca.location"), cadata=props.get("ssl.ca.pem"))
    if props.get("ssl.certificate.location"):
        context.load_cert_chain(
            props["ssl.certificate.location"],
            props.get("ssl.key.location"),
            props.get("ssl.key.password"),
        )
    if props.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    if props.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER tokens for aiokafka by the OIDC client-credentials grant: what librdkafka
    does itself with ``sasl.oauthbearer.method=oidc``. A token is reused until a minute before
    it expires."""

    def __init__(self, endpoint: str, client_id: str, client_secret: str, scope: str | None) -> None:
        self._endpoint = endpoint
        self._form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
        self._auth = (client_id, client_secret)
        self._token = ""
        self._renew_at = 0.0

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ClientCredentialsTokenProvider:
        if props.get("sasl.oauthbearer.method", "").lower() != "oidc":
            raise KafkaPropertiesError("OAUTHBEARER needs sasl.oauthbearer.method=oidc (client credentials)")
        missing = [
            name
            for name in (
                "sasl.oauthbearer.token.endpoint.url",
                "sasl.oauthbearer.client.id",
                "sasl.oauthbearer.client.secret",
            )
            if not props.get(name)
        ]
        if missing:
            raise KafkaPropertiesError("OAUTHBEARER needs " + ", ".join(missing))
        return cls(
            props["sasl.oauthbearer.token.endpoint.url"],
            props["sasl.oauthbearer.client.id"],
            props["sasl.oauthbearer.client.secret"],
            props.get("sasl.oauthbearer.scope"),
        )

    async def token(self) -> str:
        if time.monotonic() < self._renew_at:
            return self._token
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self._endpoint, data=self._form, auth=self._auth)
        response.raise_for_status()
        body = response.json()
        self._token = str(body["access_token"])
        self._renew_at = time.monotonic() + max(float(body.get("expires_in", 300)) - 60, 10)
        return self._token
