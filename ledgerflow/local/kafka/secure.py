"""What a ``--secure`` local Kafka needs: a CA, certificates, SCRAM users, client settings.

Made once per data dir (kept across down/up) under ``<data_dir>/secure/``, with the
``cryptography`` package:

- ``ca.pem``: the CA every node and client trusts;
- ``broker.pem``: each node's key and certificate (CN=broker, for 127.0.0.1), which it also
  uses to reach the other nodes and the controllers: principal ``User:broker``, a super user;
- ``<user>.crt`` / ``<user>.key``: a client certificate for each principal (CN=<user>);
- ``users.json``: the SCRAM password of each principal (mode 0600);
- ``<user>.properties``: client settings over SASL_SSL with SCRAM-SHA-512, and
  ``<user>-mtls.properties``: over mutual TLS; ready for ``--kafka-config`` /
  ``LEDGERFLOW_KAFKA_CONFIG``.

The principals are those of Ledgerflow's components (docs/operations.md lists the ACLs each
needs) plus ``admin``, a super user for setting ACLs. Certificate principals are mapped to the
bare CN, so ``engine`` over mTLS and ``engine`` over SCRAM are one principal.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledgerflow.local.kafka.config import HOST

USERS = ("admin", "engine", "worker", "gateway", "client")
SUPER_USERS = ("broker", "admin")
OIDC_AUDIENCE = "kafka"
"""The ``aud`` an OAUTHBEARER token must carry for a ``--oidc-jwks`` cluster."""
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
"""Both made for every user (by the launcher, through the Admin API, once the nodes run)."""
_VALID = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class SecureFiles:
    """Paths of one data dir's security material."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.pem"

    @property
    def users(self) -> Path:
        return self.folder / "users.json"

    def properties(self, user: str, mtls: bool = False) -> Path:
        """The client settings file of ``user`` (SCRAM, or mutual TLS)."""
        return self.folder / f"{user}{'-mtls' if mtls else ''}.properties"

    def passwords(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads(self.users.read_text())
        return loaded

    def ensure(self) -> None:
        """Make whatever is missing (a second call finds it all and does nothing)."""
        if self.users.exists() and self.keystore.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_key = _new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ledgerflow local CA")])
        ca_cert = (
            _builder(ca_name, ca_name, ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        _write(self.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
        broker_key, broker_cert = _leaf("broker", ca_cert, ca_key, server=True)
        _write(self.keystore, _pkcs8(broker_key) + broker_cert.public_bytes(serialization.Encoding.PEM))
        passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        for user in USERS:
            key, cert = _leaf(user, ca_cert, ca_key, server=False)
            _write(self.folder / f"{user}.key", _pkcs8(key))
            _write(self.folder / f"{user}.crt", cert.public_bytes(serialization.Encoding.PEM))
            _write(self.properties(user), self._scram_settings(user, passwords[user]).encode())
            _write(self.properties(user, mtls=True), self._mtls_settings(user).encode())
        _write(self.users, json.dumps(passwords, indent=2).encode())

    def _scram_settings(self, user: str, password: str) -> str:
        return (
            f"# {user} over SASL_SSL with SCRAM-SHA-512 (written by `ledgerflow kafka up --secure`)\n"
            "security.protocol=SASL_SSL\n"
            "sasl.mechanism=SCRAM-SHA-512\n"
            f"sasl.username={user}\n"
            f"sasl.password={password}\n"
            f"ssl.ca.location={self.ca}\n"
        )

    def _mtls_settings(self, user: str) -> str:
        return (
            f"# {user} over mutual TLS (written by `ledgerflow kafka up --secure`)\n"
            "security.protocol=SSL\n"
            f"ssl.ca.location={self.ca}\n"
            f"ssl.certificate.location={self.folder / f'{user}.crt'}\n"
            f"ssl.key.location={self.folder / f'{user}.key'}\n"
        )

    def broker_settings(self, oidc_jwks_url: str | None = None) -> dict[str, str | int]:
        """The security half of every node's server.properties (listeners aside). With
        ``oidc_jwks_url``, the SASL_SSL listener also takes OAUTHBEARER tokens (OIDC JWTs for
        audience ``kafka``, signed by a key of that JWKS; the principal is the ``sub`` claim)."""
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        mechanisms = [*SCRAM_MECHANISMS, *(["OAUTHBEARER"] if oidc_jwks_url else [])]
        oauth: dict[str, str | int] = {}
        if oidc_jwks_url:
            handler = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
            oauth = {
                "listener.name.client.oauthbearer.sasl.jaas.config": (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
                ),
                "listener.name.client.oauthbearer.sasl.server.callback.handler.class": handler,
                "sasl.oauthbearer.jwks.endpoint.url": oidc_jwks_url,
                "sasl.oauthbearer.expected.audience": OIDC_AUDIENCE,
            }
        return {
            **oauth,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca),
            # the CN alone: User:engine over mTLS is User:engine over SCRAM
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "listener.name.client.sasl.enabled.mechanisms": ",".join(mechanisms),
            **{f"listener.name.client.{m.lower()}.sasl.jaas.config": jaas for m in SCRAM_MECHANISMS},
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": ";".join(f"User:{user}" for user in SUPER_USERS),
            "allow.everyone.if.no.acl.found": "false",
        }


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
    )


def _leaf(
    name: str, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey, *, server: bool
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, *([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])]
    builder = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (keys and passwords among them)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
