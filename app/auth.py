"""Sign-in: who may log in (password hashes from --auth, SDPT_AUTH or a users file; Hugging Face OAuth on a Space)
and which user name a request carries. What that user may do is app/access.py's job.

A users file holds one `name:hash` line per user (`#` starts a comment); make a line with
`python -m app.auth NAME` (it asks for the password). Hashes are scrypt with a random salt; no password is kept.
"""
from __future__ import annotations

import getpass
import collections
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

# scrypt cost: ~40 ms per check on one core, paid once per sign-in (the session cookie carries the rest)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_USER_NAME = 100


class SignInError(ValueError):
    """A malformed --auth value, SDPT_AUTH entry or users-file line; the message says which and how to fix it."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        found = hashlib.scrypt(str(password).encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found.hex(), digest)


def check_user_name(name: str, where: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_USER_NAME or any(ch in name for ch in ":,\n\r\t") or not name.isprintable():
        raise SignInError(f"{where}: user name {name!r} must be 1-{MAX_USER_NAME} printable characters "
                          "without ':' or ','")
    return name


def parse_pairs(pairs: list[str], where: str) -> dict[str, str]:
    """{name: hash} from 'USER:PASSWORD' strings (the password is hashed at once and not kept)."""
    users = {}
    for pair in pairs:
        name, sep, password = (pair or "").partition(":")
        if not sep or not password:
            raise SignInError(f"{where}: {name or pair!r} is not USER:PASSWORD (both parts needed)")
        users[check_user_name(name, where)] = hash_password(password)
    return users


def read_users_file(path: Path) -> dict[str, str]:
    users = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, stored = line.partition(":")
        if not sep or not stored.startswith("scrypt$") or stored.count("$") != 5:
            raise SignInError(f"{path} line {number}: expected NAME:scrypt$... (make one with "
                              "`python -m app.auth NAME`); plain passwords are not accepted in a users file")
        users[check_user_name(name, f"{path} line {number}")] = stored
    return users


def collect_users(auth_flags: list[str] | None, env_auth: str | None, users_file: Path | None) -> dict[str, str]:
    """Every configured user: --auth flags, then SDPT_AUTH ("alice:pw1,bob:pw2"), then the users file."""
    users = parse_pairs(list(auth_flags or []), "--auth")
    if env_auth:
        users.update(parse_pairs([p for p in env_auth.split(",") if p.strip()], "SDPT_AUTH"))
    if users_file:
        users.update(read_users_file(users_file))
    return users


class TooManyAttempts(Exception):
    """Sign-in refused for a while after too many failures; `wait_s` says how long."""

    def __init__(self, wait_s: float):
        super().__init__(f"too many failed sign-ins; try again in {max(1, int(wait_s + 0.999))} s")
        self.wait_s = wait_s


class SignInLimiter:
    """At most `max_failures` failed sign-ins per key (a user name) within `window_s`; past that every attempt, even
    with the right password, is refused until the oldest failure leaves the window."""

    def __init__(self, max_failures: int = 20, window_s: float = 60.0, clock=time.monotonic):
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        with self._lock:
            recent = self._recent(key)
            if len(recent) >= self.max_failures:
                raise TooManyAttempts(recent[0] + self.window_s - self.clock())

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self.clock())

    def _recent(self, key: str) -> collections.deque:
        recent = self._failures.setdefault(key, collections.deque())
        while recent and recent[0] <= self.clock() - self.window_s:
            recent.popleft()
        if not recent and len(self._failures) > 10_000:  # forget idle keys: a flood of names cannot fill memory
            self._failures.pop(key, None)
            recent = self._failures.setdefault(key, collections.deque())
        return recent


def password_checker(users: dict[str, str], limiter: SignInLimiter | None = None):
    """The callable gradio's launch(auth=...) calls with (user, password).

    Unknown names cost one scrypt check, as known ones do (no probing of names by time). After too many failures for
    one name the check answers HTTP 429 "try again in N s", whatever the password."""
    limiter = limiter or SignInLimiter()
    dummy = hash_password(secrets.token_hex(8))  # made once: an unknown name costs exactly one verification

    def check(name: str, password: str) -> bool:
        key = (name or "").strip().casefold()
        try:
            limiter.check(key)
        except TooManyAttempts as error:
            from fastapi import HTTPException

            logger.info("sign-in of %r refused: %s", name, error)
            raise HTTPException(status_code=429, detail=str(error)) from None
        stored = users.get((name or "").strip())
        good = verify_password(password, stored if stored is not None else dummy) and stored is not None
        if not good:
            limiter.failed(key)
        return good
    return check


def on_space() -> bool:
    """A Hugging Face Space with `hf_oauth: true` in its README front-matter gets these variables."""
    return bool(os.environ.get("SYSTEM") == "spaces" and os.environ.get("SPACE_ID")
                and os.environ.get("OAUTH_CLIENT_ID"))  # SYSTEM=spaces: how gradio itself tells a Space


def user_name(request, oauth: bool) -> str | None:
    """The signed-in user name a gradio request carries, or None when nobody signed in."""
    if request is None:
        return None
    name = getattr(request, "username", None)
    if name:
        return str(name)
    if oauth:
        from gradio import oauth as gradio_oauth

        try:
            session = request.session  # only there when gradio installed its session middleware (OAuth)
        except (AssertionError, AttributeError):
            return None
        info = gradio_oauth._get_valid_oauth_info_from_session(session)
        if info:
            return str(info["userinfo"].get("preferred_username") or "") or None
    return None


def main(argv: list[str] | None = None) -> None:
    """`python -m app.auth NAME`: print a users-file line for NAME (asks for the password twice)."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: python -m app.auth NAME   (prints NAME:hash for the users file)")
    name = check_user_name(args[0], "NAME")
    password = getpass.getpass(f"password for {name}: ")
    if password != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ; nothing printed")
    sys.stdout.write(f"{name}:{hash_password(password)}\n")


if __name__ == "__main__":
    main()
