"""Who is calling: an API key (``X-API-Key`` or ``Authorization: Bearer``) or a bearer JWT.

A bearer credential shaped like a JWT (three dot-separated parts) is checked as one when JWTs
are configured; anything else is looked up as an API key. Generated keys hold no dots.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request

from ledgerflow import namespaces
from ledgerflow.api.errors import (
    ForbiddenError,
    InvalidNamespaceError,
    NamespaceForbiddenError,
    UnauthorizedError,
)
from ledgerflow.api.jwt_tokens import InvalidTokenError, JwtVerifier
from ledgerflow.api.keys import KeyRing, load_keys
from ledgerflow.api.scopes import Principal, Scope
from ledgerflow.api.settings import GatewaySettings

log = logging.getLogger("ledgerflow.gateway.auth")


def _looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2


class Authenticator:
    def __init__(self, keys: KeyRing | None, jwts: JwtVerifier | None) -> None:
        self.keys = keys
        self.jwts = jwts

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Authenticator | None:
        """The configured authenticator, or ``None`` when no credential is configured.

        Raises ``KeysFileError`` for an unreadable or malformed keys file."""
        if not settings.auth_enabled:
            return None
        keys = load_keys(settings.api_keys_file) if settings.api_keys_file else None
        jwts = JwtVerifier(settings) if settings.jwt_jwks_url else None
        return cls(keys, jwts)

    async def authenticate(self, api_key: str | None, authorization: str | None) -> Principal:
        """The caller presenting these headers; raises ``UnauthorizedError``."""
        credential = api_key
        if credential is None and authorization:
            scheme, _, rest = authorization.partition(" ")
            if scheme.lower() == "bearer":
                credential = rest.strip()
        if not credential:
            raise UnauthorizedError()
        if self.jwts is not None and _looks_like_jwt(credential):
            try:
                return await asyncio.to_thread(self.jwts.verify, credential)
            except InvalidTokenError as exc:
                log.info("JWT refused: %s", exc)
                raise UnauthorizedError(str(exc), presented=True) from None
        principal = self.keys.lookup(credential) if self.keys is not None else None
        if principal is None:
            raise UnauthorizedError("unknown API key", presented=True)
        return principal


def principal_of(request: Request) -> Principal:
    """The caller of ``request``, set by ``AuthMiddleware``."""
    principal: Principal = request.state.principal
    return principal


def require(request: Request, scope: Scope, what: str) -> None:
    """Raise ``ForbiddenError`` unless the caller has ``scope`` (for a route whose body decides
    what it does, beyond the route's own scope)."""
    if not principal_of(request).allows(scope):
        raise ForbiddenError(scope.value, what)


NAMESPACE_HEADER = "Ledgerflow-Namespace"


def namespace_of(request: Request) -> str:
    """The namespace a request acts in: its ``Ledgerflow-Namespace`` header, else the caller's
    one namespace when it has exactly one, else ``default``. 400 for a malformed name, 403 for
    a namespace the caller's credential does not name."""
    principal = principal_of(request)
    named = request.headers.get(NAMESPACE_HEADER)
    if named is None:
        only = principal.namespaces[0] if len(principal.namespaces) == 1 else namespaces.ALL
        named = namespaces.DEFAULT if only == namespaces.ALL else only
    if not namespaces.is_valid(named):
        raise InvalidNamespaceError(named)
    if not principal.may_use(named):
        raise NamespaceForbiddenError(named)
    request.state.namespace = named  # error answers name ids as this caller does
    return named
