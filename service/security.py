"""API keys, the admin token and the bind-address rule (rate limits: `service.rate_limits`).

Keys are compared in constant time against every configured key; they are never logged:
callers are identified in logs and rate limits by a short hash of their key.

A key may be limited to route sets (`{"key": "...", "sets": ["support"]}` in
`ROUTER_AUTH__API_KEYS`, beside plain keys, which reach every set), and an admin token may be
given per set (`ROUTER_AUTH__SET_ADMIN_TOKENS`); a credential never reads or re-indexes a set it
is not given (403, `service.set_choice`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator

from router_core import RouterError
from router_core.settings import SET_NAME_PATTERN, SettingsSection

SetNames = Annotated[
    list[Annotated[str, Field(pattern=SET_NAME_PATTERN)]],
    Field(min_length=1, max_length=1000, description="The route sets it may use, by name."),
]


class SetKey(SettingsSection):
    """An API key limited to some route sets."""

    key: SecretStr
    sets: SetNames


class SetAdminToken(SettingsSection):
    """An admin token limited to some route sets: their index, re-index and review."""

    token: SecretStr
    sets: SetNames


class AuthSettings(SettingsSection):
    """Who may call the service."""

    api_keys: list[SecretStr | SetKey] = Field(
        default_factory=list,
        description="Bearer tokens accepted on the public endpoints (JSON list in the env var): a string "
        'reaches every route set, {"key": "...", "sets": ["support"]} only those sets.',
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of /admin endpoints, for every route set."
    )
    set_admin_tokens: list[SetAdminToken] = Field(
        default_factory=list,
        description='Admin tokens limited to route sets (JSON: [{"token": "...", "sets": ["support"]}]).',
    )
    rate_per_minute: int = Field(
        default=0, ge=0, description="Queries per minute per key (a batch counts its queries); 0 = off."
    )
    rate_burst: int = Field(default=0, ge=0, description="Bucket size; 0 = rate_per_minute.")
    set_rate_per_minute: int = Field(
        default=0,
        ge=0,
        description="Queries per minute per route set, all callers together (charged like the per-key "
        "limit), so that a busy set cannot take the capacity of the others; 0 = off.",
    )
    set_rate_burst: int = Field(default=0, ge=0, description="Bucket size per set; 0 = set_rate_per_minute.")
    failed_per_minute: int = Field(
        default=10,
        ge=1,
        description="Failed authentications per minute per client address and per presented credential "
        "(burst of as many); past it, unknown credentials from that address (or that credential from "
        "anywhere) are refused with 429 until the bucket refills. Valid credentials are not refused.",
    )
    blocked_checks_per_minute: int = Field(
        default=60,
        ge=1,
        description="Credentials checked per minute from an address past its failed-authentication limit "
        "(a valid one goes through); beyond it they are refused unchecked. Keys that have already "
        "authenticated are always checked.",
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins; empty = CORS off.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _key_entries(cls, keys: object) -> object:
        """Each entry a key or `{"key", "sets"}`, with one clear error (never quoting a key)
        instead of one per member of the union."""
        if not isinstance(keys, list):
            return keys
        for i, entry in enumerate(keys):
            where = f"key {i + 1} of {len(keys)}"
            if isinstance(entry, dict):
                try:
                    keys[i] = SetKey.model_validate(entry)
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                        for e in exc.errors(include_input=False, include_url=False)
                    )
                    raise ValueError(f"{where}: {problems}") from None
            elif not isinstance(entry, str | SecretStr | SetKey):
                raise ValueError(f'{where} must be a string or {{"key": "...", "sets": ["<set>", ...]}}')
        return keys

    @field_validator("api_keys")
    @classmethod
    def _usable_keys(cls, keys: list[SecretStr | SetKey]) -> list[SecretStr | SetKey]:
        for i, key in enumerate(keys):
            problem = credential_problem(secret_of(key).get_secret_value())
            if problem:
                raise ValueError(f"key {i + 1} of {len(keys)} {problem}")
        return keys

    @field_validator("set_admin_tokens")
    @classmethod
    def _usable_set_tokens(cls, tokens: list[SetAdminToken]) -> list[SetAdminToken]:
        for i, entry in enumerate(tokens):
            problem = credential_problem(entry.token.get_secret_value())
            if problem:
                raise ValueError(f"token {i + 1} of {len(tokens)} {problem}")
        return tokens

    def named_sets(self) -> list[tuple[str, str]]:
        """(the setting, a set name) for every set a key or token is limited to, to check that
        the sets exist (the setting is named, never the key)."""
        found = [("ROUTER_AUTH__API_KEYS", name) for k in self.api_keys if isinstance(k, SetKey) for name in k.sets]
        found += [("ROUTER_AUTH__SET_ADMIN_TOKENS", name) for t in self.set_admin_tokens for name in t.sets]
        return found

    @field_validator("admin_token")
    @classmethod
    def _usable_admin_token(cls, token: SecretStr | None) -> SecretStr | None:
        problem = credential_problem(token.get_secret_value()) if token is not None else None
        if problem:
            hint = " (unset the variable to disable the admin endpoints)" if problem == "is empty" else ""
            raise ValueError(f"the token {problem}{hint}")
        return token


def secret_of(key: SecretStr | SetKey) -> SecretStr:
    """The key of an API key entry, plain or limited to sets."""
    return key.key if isinstance(key, SetKey) else key


def credential_problem(value: str) -> str | None:
    """Why a configured key could never be presented as `Authorization: Bearer <key>` (it would
    refuse everyone, or, as a key list that is not empty, let the service bind any address), or
    None. Never quotes the value."""
    if not value:
        return "is empty"
    if value != value.strip():
        return "starts or ends with whitespace, which a bearer token cannot carry"
    if any(not " " <= c <= "~" for c in value):
        return "holds a character that is not printable ASCII, which an HTTP header cannot carry"
    return None


class InsecureBind(RouterError):
    """Refusing to listen on a non-loopback address without API keys."""


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback ranges."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: AuthSettings, *, allow_insecure: bool) -> None:
    """Refuse an open (keyless) service on any address other than loopback, unless allowed."""
    if auth.api_keys or auth.set_admin_tokens or is_loopback(host) or allow_insecure:
        return
    raise InsecureBind(
        f"refusing to listen on {host} without API keys: set ROUTER_AUTH__API_KEYS "
        "(e.g. '[\"key1\"]'), bind to 127.0.0.1, or set ROUTER_ALLOW_INSECURE_BIND=true"
    )


def key_id(token: str) -> str:
    """A short, non-reversible name for a key, for logs and rate limits."""
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Credential:
    """What a presented credential may do: the admin endpoints or not, and on which route sets
    (None: every set)."""

    admin: bool
    sets: frozenset[str] | None = None

    def may_use(self, route_set: str) -> bool:
        """The credential may read (and, if admin, re-index) `route_set`."""
        return self.sets is None or route_set in self.sets


EVERY_SET = Credential(admin=True)
"""What a caller may do when no key of any kind is configured (loopback only)."""


class KeyRing:
    """The configured keys, checked in constant time."""

    def __init__(
        self,
        api_keys: Sequence[SecretStr | SetKey],
        admin_token: SecretStr | None,
        set_admin_tokens: Sequence[SetAdminToken] = (),
    ) -> None:
        self._keys = [
            (secret_of(k).get_secret_value().encode(), frozenset(k.sets) if isinstance(k, SetKey) else None)
            for k in api_keys
        ]
        self._admin = admin_token.get_secret_value().encode() if admin_token else None
        self._set_admins = [(t.token.get_secret_value().encode(), frozenset(t.sets)) for t in set_admin_tokens]

    @property
    def open(self) -> bool:
        """No keys at all: the loopback-only development mode."""
        return not self._keys and self._admin is None and not self._set_admins

    @property
    def public_open(self) -> bool:
        """Public endpoints need no key."""
        return not self._keys and not self._set_admins

    def credential(self, token: str) -> Credential | None:
        """What `token` may do, compared with every key and token (no early exit) in constant
        time; None when it is none of them. An admin token may use the public endpoints too."""
        given = token.encode()
        found: Credential | None = None
        for key, sets in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = Credential(admin=False, sets=sets)
        for key, sets in self._set_admins:
            if hmac.compare_digest(given, key):
                found = Credential(admin=True, sets=sets)
        if self._admin is not None and hmac.compare_digest(given, self._admin):
            found = EVERY_SET
        return found

    def is_api_key(self, token: str) -> bool:
        """Compare against every key (no early exit) in constant time."""
        given = token.encode()
        found = False
        for key, _ in self._keys:
            found |= hmac.compare_digest(given, key)
        return found

    def is_admin(self, token: str) -> bool:
        """Constant-time comparison with the admin token (of every set)."""
        return self._admin is not None and hmac.compare_digest(token.encode(), self._admin)

    @property
    def admin_configured(self) -> bool:
        """An admin token is set (for every set, or for some)."""
        return self._admin is not None or bool(self._set_admins)
