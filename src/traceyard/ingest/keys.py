"""Langfuse key pairs: which public/secret pair may write to which project.

Langfuse SDKs authenticate every call with HTTP Basic ``base64(public_key:secret_key)``. We
accept any number of pairs, each bound to a project, from the setting ``langfuse_keys`` (env
``TRACEYARD_LANGFUSE_KEYS``)::

    pk-lf-a:sk-lf-a@proj1,pk-lf-b:sk-lf-b

A pair without ``@project`` writes to the tracer's default project.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from traceyard.config import Settings
from traceyard.errors import ConfigError

ENV_VAR = "TRACEYARD_LANGFUSE_KEYS"

#: What a client that sent no (or a wrong) pair is told, so the fix is one line away.
HOW_TO_CONFIGURE = (
    "set TRACEYARD_LANGFUSE_KEYS='pk-lf-...:sk-lf-...@project' (several pairs separated by "
    "commas; without @project the default project) on the traceyard server, and give the same "
    "pair to the Langfuse SDK as LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY"
)


@dataclass(frozen=True)
class KeyPair:
    public_key: str
    secret_key: str
    project: str


class KeyRing:
    """The configured pairs; answers "which project does this Authorization header unlock"."""

    def __init__(self, pairs: list[KeyPair], problem: str | None = None) -> None:
        self._by_public: dict[str, KeyPair] = {pair.public_key: pair for pair in pairs}
        #: Why the configured pairs could not be read (the routes report it, not a 500).
        self.problem = problem

    def __bool__(self) -> bool:
        return bool(self._by_public)

    def __len__(self) -> int:
        return len(self._by_public)

    def projects(self) -> list[str]:
        return sorted({pair.project for pair in self._by_public.values()})

    def authenticate(self, authorization: str | None) -> KeyPair | None:
        """The pair a ``Basic`` header names, if its secret matches (constant-time compare)."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return None
        public_key, secret_key = credentials
        pair = self._by_public.get(public_key)
        if pair is None:
            # Compare anyway so a wrong public key costs the same time as a wrong secret.
            hmac.compare_digest(secret_key.encode(), b"-" * len(secret_key))
            return None
        if not hmac.compare_digest(secret_key.encode(), pair.secret_key.encode()):
            return None
        return pair


def parse_key_pairs(text: str | None, default_project: str) -> list[KeyPair]:
    """Parse ``pk:sk[@project],...``; a malformed entry is a :class:`ConfigError`."""
    pairs: list[KeyPair] = []
    for raw_entry in (text or "").split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        keys, _, project = entry.partition("@")
        public_key, sep, secret_key = keys.partition(":")
        public_key, secret_key, project = public_key.strip(), secret_key.strip(), project.strip()
        if not sep or not public_key or not secret_key:
            raise ConfigError(
                f"{ENV_VAR}: entry {_redact(entry)!r} is not 'public_key:secret_key[@project]'"
            )
        pairs.append(KeyPair(public_key, secret_key, project or default_project))
    return pairs


def load_key_ring(settings: Settings) -> KeyRing:
    """The pairs of ``settings.langfuse_keys``; a malformed value is kept as the ring's
    ``problem`` (answered on the Langfuse routes) rather than stopping the whole server."""
    configured = settings.langfuse_keys
    raw = configured.get_secret_value() if configured is not None else None
    try:
        return KeyRing(parse_key_pairs(raw, settings.project))
    except ConfigError as exc:
        return KeyRing([], problem=str(exc))


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    public_key, sep, secret_key = decoded.partition(":")
    if not sep:
        return None
    return public_key, secret_key


def _redact(entry: str) -> str:
    """Never echo a secret back in an error message."""
    keys, at, project = entry.partition("@")
    public_key, sep, _ = keys.partition(":")
    return f"{public_key}{sep}{'***' if sep else ''}{at}{project}"
