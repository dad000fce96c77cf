"""Dashboard users: salted scrypt password hashes and authentication.

Passwords are never stored. :func:`hash_password` derives a 32-byte key with
:func:`hashlib.scrypt` (n = 2**14, r = 8, p = 1: about 16 MiB and a few tens of milliseconds
per check) from the password and a fresh 16-byte random salt, and stores
``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and key in base64). :func:`verify_password` derives
again with the stored parameters and compares with :func:`hmac.compare_digest` (constant
time). :func:`authenticate` runs one derivation even for an unknown name, so a caller cannot
tell unknown names from wrong passwords by timing.

Example
-------
>>> stored = hash_password("correct horse battery")
>>> stored.startswith("scrypt$16384$8$1$")
True
>>> verify_password("correct horse battery", stored), verify_password("wrong", stored)
(True, False)
>>> hash_password("correct horse battery") == stored  # a new salt every time
False
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import User, UserRole, utcnow

__all__ = [
    "MIN_PASSWORD_CHARS",
    "UserError",
    "hash_password",
    "verify_password",
    "validate_user_name",
    "create_user",
    "set_password",
    "authenticate",
    "get_user",
    "list_users",
]

#: Shortest accepted password (characters).
MIN_PASSWORD_CHARS = 8
#: scrypt cost parameters of new hashes (CPU/memory cost n, block size r, parallelism p).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UserError(ValueError):
    """A user could not be created or changed (name taken, bad name, weak password)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * 1024 * 1024)


def hash_password(password: str) -> str:
    """Salted scrypt hash of ``password`` in the self-describing stored form.

    Parameters
    ----------
    password : str
        Any non-empty text (encoded as UTF-8).

    Returns
    -------
    str
        ``scrypt$n$r$p$salt_b64$key_b64``.
    """
    if not password:
        raise UserError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (constant-time comparison).

    A malformed stored value never matches (and never raises).
    """
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, key = base64.b64decode(salt_b64, validate=True), base64.b64decode(key_b64, validate=True)
        n_i, r_i, p_i = int(n), int(r), int(p)
    except (ValueError, AttributeError):
        return False
    if not (1 < n_i <= 2**20 and 0 < r_i <= 32 and 0 < p_i <= 16 and 0 < len(key) <= 128):
        return False
    candidate = _derive(password or "", salt, n_i, r_i, p_i, len(key))
    return hmac.compare_digest(candidate, key)


#: Hash checked when the user does not exist, so the time taken does not reveal it.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def validate_user_name(name: str) -> str:
    """The name stripped; 1-64 characters of letters, digits and ``. _ @ -``."""
    name = (name or "").strip()
    if not _NAME_RE.match(name):
        raise UserError(f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_', '@' "
                        "or '-', starting with a letter or digit")
    return name


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")


def create_user(session: Session, name: str, role: UserRole | str, password: str) -> User:
    """Add a user (the caller commits).

    Raises
    ------
    UserError
        Invalid name or role, password shorter than :data:`MIN_PASSWORD_CHARS`, or the name is
        already taken.
    """
    name = validate_user_name(name)
    try:
        role = UserRole(role)
    except ValueError:
        raise UserError(f"unknown role {role!r}: choose {', '.join(r.value for r in UserRole)}") from None
    _check_password(password)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UserError(f"a user named {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, name: str, password: str) -> User:
    """Replace a user's password (new salt)."""
    _check_password(password)
    user = get_user(session, name)
    if user is None:
        raise UserError(f"no user named {name!r}")
    user.password_hash = hash_password(password)
    session.flush()
    return user


def get_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == (name or "").strip()))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user if ``name`` and ``password`` match (and ``last_login_at`` is set), else None."""
    user = get_user(session, name)
    ok = verify_password(password, user.password_hash if user is not None else _DUMMY_HASH)
    if user is None or not ok:
        return None
    user.last_login_at = utcnow()
    session.flush()
    return user
