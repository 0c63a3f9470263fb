"""OIDC/JWT bearer tokens, checked against the identity provider's JWKS.

A token is accepted when its signature verifies with a key of the JWKS (``jwt_jwks_url``,
fetched and cached by PyJWT's ``PyJWKClient``) under one of ``jwt_algorithms`` (asymmetric
only: never ``none``, never HS*), and its ``iss``, ``aud``, ``exp`` (required), ``nbf`` and
``iat`` hold, give or take ``jwt_leeway`` seconds.

Scopes come from the ``jwt_scope_claim`` claim (a space-separated string, as OAuth's ``scope``,
or a list, as Azure's ``scp``): the values with the ``jwt_scope_prefix`` prefix
(``ledgerflow:read`` gives ``read``); others are ignored. Namespaces come from the
``jwt_namespaces_claim`` claim (a list or a space-separated string; ``["default"]`` without it).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt

from ledgerflow.api.scopes import DEFAULT_NAMESPACES, Principal, Scope
from ledgerflow.api.settings import GatewaySettings

log = logging.getLogger("ledgerflow.gateway.auth")


class InvalidTokenError(Exception):
    """The token was refused; the message says why, without the token."""


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


class JwtVerifier:
    def __init__(self, settings: GatewaySettings) -> None:
        assert settings.jwt_jwks_url is not None
        self.settings = settings
        self.jwks = jwt.PyJWKClient(
            settings.jwt_jwks_url,
            cache_jwk_set=True,
            lifespan=settings.jwt_jwks_cache_seconds,
            timeout=settings.jwt_jwks_timeout,
        )

    def verify(self, token: str) -> Principal:
        """The principal of a valid ``token``; raises ``InvalidTokenError``. Blocking (it may
        fetch the JWKS): call it off the event loop."""
        settings = self.settings
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=settings.jwt_algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("JWKS not readable from %s: %s", settings.jwt_jwks_url, exc)
            raise InvalidTokenError("the token's signing keys could not be fetched") from None
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            raise InvalidTokenError(f"the token is not for this gateway ({exc})") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise InvalidTokenError(f"the token is not valid ({type(exc).__name__})") from None
        prefix = settings.jwt_scope_prefix
        known = {scope.value for scope in Scope}
        scopes = {
            Scope(word[len(prefix) :])
            for word in _words(claims.get(settings.jwt_scope_claim))
            if word.startswith(prefix) and word[len(prefix) :] in known
        }
        namespaces = tuple(_words(claims.get(settings.jwt_namespaces_claim))) or DEFAULT_NAMESPACES
        subject = str(claims.get("sub") or claims.get("client_id") or "jwt")
        return Principal(subject, frozenset(scopes), namespaces, kind="jwt")
