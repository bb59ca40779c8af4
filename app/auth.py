"""Sign-in: who may log in (password hashes from --auth, SDPT_AUTH or a users file; Hugging Face OAuth on a Space)
and which user name a request carries. What that user may do is app/access.py's job.

A users file holds one `name:hash` line per user (`#` starts a comment); make a line with
`python -m app.auth NAME` (it asks for the password). Hashes are scrypt with a random salt; no password is kept.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import os
import secrets
import sys
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


def password_checker(users: dict[str, str]):
    """The callable gradio's launch(auth=...) calls with (user, password)."""
    def check(name: str, password: str) -> bool:
        stored = users.get((name or "").strip())
        if stored is None:
            verify_password(password, hash_password("x"))  # same cost as a real check: no user-name probing by time
            return False
        return verify_password(password, stored)
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
