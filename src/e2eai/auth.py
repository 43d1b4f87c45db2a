"""The admin token: what every state-changing call (rollout, feedback, reload, retrain) needs.

One bearer token per deployment. ``settings.auth.admin_token`` when configured (a Secret on
a cluster); otherwise a random token generated on first use into ``<home>/admin_token`` with
mode 0600, so that only the account that runs e2eai (and its CLI) can read it. Servers compare
in constant time and never log the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2eai.config import Settings

TOKEN_FILE = "admin_token"
#: Environment variable that hands the token to a server process (never its command line).
TOKEN_ENV = "E2EAI_AUTH__ADMIN_TOKEN"


def token_path(home: Path) -> Path:
    return Path(home) / TOKEN_FILE


def admin_token(settings: Settings) -> str:
    """The deployment's admin token: configured, or read (created on first use) from home."""
    if settings.auth.admin_token:
        return settings.auth.admin_token
    path = token_path(settings.home)
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once agree on the first one's token.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header that carries ``token``."""
    return {"Authorization": f"Bearer {token}"}


def is_authorized(authorization: str | None, token: str) -> bool:
    """True when an ``Authorization`` header value carries ``token`` (constant-time)."""
    if not authorization or not token:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def token_digest(token: str) -> bytes:
    """What a server keeps of the token: its sha256, never the token itself."""
    return hashlib.sha256(token.encode()).digest()


def matches_digest(authorization: str | None, digest: bytes) -> bool:
    """True when an ``Authorization`` header carries the token whose sha256 is ``digest``."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    return hmac.compare_digest(token_digest(value.strip()), digest)
