"""Checking a sign-in the way diaspora* does: Devise's bcrypt(password + pepper), TOTP for accounts
with two-factor sign-in, and podmod's own guards: replayed codes and failed-attempt limits.
"""

from __future__ import annotations

import functools
import hmac
import re
import time

import bcrypt
import psycopg
import pyotp
import redis

from podmod.config import Config

TOTP_STEP = 30  # seconds, as devise-two-factor
TOTP_DRIFT_STEPS = 1  # a code of the step before or after is accepted, as diaspora* allows 30 s
LIMIT_PREFIX = "podmod:login:"


def _devise_input(password: str, pepper: str) -> bytes:
    # Ruby's bcrypt reads only the first 72 bytes of password + pepper (always longer than that);
    # Python's bcrypt 5 refuses longer input, so cut it the same way.
    return (password + pepper).encode()[:72]


@functools.cache
def _dummy_hash() -> bytes:
    """A hash to check unknown usernames against, so that they take as long as known ones."""
    return bcrypt.hashpw(b"placeholder", bcrypt.gensalt(10, b"2a"))


def password_matches(password: str, encrypted_password: str | None, pepper: str) -> bool:
    """True when `password` is the one Devise stored as `encrypted_password`."""
    candidate = _devise_input(password, pepper)
    hashed = (encrypted_password or "").encode()
    try:
        if not hashed.startswith(b"$2"):
            bcrypt.checkpw(candidate, _dummy_hash())
            return False
        return bcrypt.checkpw(candidate, hashed)
    except ValueError:  # NUL bytes in the password, or a damaged hash
        return False


def totp_timestep(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code this is (within the allowed drift), or None."""
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code) or not secret:
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // TOTP_STEP)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        try:
            expected = totp.generate_otp(step)
        except ValueError:  # not a base32 secret
            return None
        if hmac.compare_digest(expected, code):
            return step
    return None


def consume_timestep(state: psycopg.Connection, user_id: int, step: int) -> bool:
    """Record `step` as used by this user; False if it (or a later one) was used already."""
    row = state.execute(
        "INSERT INTO podmod.web_otp_steps (user_id, last_timestep) VALUES (%s, %s)"
        " ON CONFLICT (user_id) DO UPDATE SET last_timestep = excluded.last_timestep,"
        " updated_at = now() WHERE podmod.web_otp_steps.last_timestep < excluded.last_timestep"
        " RETURNING user_id",
        (user_id, step),
    ).fetchone()
    return row is not None


class LoginLimiter:
    """Failed sign-ins counted per account and per IP address in Redis, for web.login_window
    seconds from the first failure; at the limit, sign-in is refused without checking anything."""

    def __init__(self, rconn: redis.Redis, config: Config) -> None:
        self.rconn = rconn
        self.window = config["web.login_window"]
        self.per_account = config["web.login_max_failures"]
        self.per_ip = config["web.login_max_failures_per_ip"]

    @staticmethod
    def _keys(username: str, ip: str) -> tuple[str, str]:
        return (
            f"{LIMIT_PREFIX}user:{username.strip().lower()[:100]}",
            f"{LIMIT_PREFIX}ip:{ip[:64]}",
        )

    def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds until sign-in is allowed again, or None if it is allowed now."""
        user_key, ip_key = self._keys(username, ip)
        pipe = self.rconn.pipeline()
        pipe.get(user_key)
        pipe.get(ip_key)
        pipe.ttl(user_key)
        pipe.ttl(ip_key)
        user_count, ip_count, user_ttl, ip_ttl = pipe.execute()
        waits = []
        if int(user_count or 0) >= self.per_account:
            waits.append(user_ttl)
        if int(ip_count or 0) >= self.per_ip:
            waits.append(ip_ttl)
        return max(max(waits), 1) if waits else None

    def failed(self, username: str, ip: str) -> None:
        pipe = self.rconn.pipeline()
        for key in self._keys(username, ip):
            pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        pipe.execute()

    def succeeded(self, username: str) -> None:
        self.rconn.delete(self._keys(username, "")[0])
