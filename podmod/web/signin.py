"""Checking a sign-in the way diaspora* does: Devise's bcrypt(password + pepper), TOTP for accounts
with two-factor sign-in, and podmod's own guards: replayed codes, device cookies and attempt limits.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
import secrets
import time
from dataclasses import dataclass

import bcrypt
import psycopg
import pyotp
import redis
from itsdangerous import BadSignature, URLSafeTimedSerializer

from podmod.config import Config

TOTP_STEP = 30  # seconds, as devise-two-factor
TOTP_DRIFT_STEPS = 1  # a code of the step before or after is accepted, as diaspora* allows 30 s
LIMIT_PREFIX = "podmod:login:"
DEVICE_SECONDS = 180 * 86400  # a device cookie is trusted for half a year after its sign-in


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


def network_of(ip: str) -> str:
    """What the per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one (one household or
    server holds a whole /64, so counting its addresses apart would count nothing)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def device_cookie(secret: str, username: str) -> str:
    """A device cookie (OWASP's pattern against online guessing): this browser signed in as
    `username`; a random nonce makes each one its own device."""
    return _device_serializer(secret).dumps([username, secrets.token_urlsafe(16)])


def device_nonce(secret: str, cookie: str | None, username: str) -> str | None:
    """The nonce of a valid, unexpired device cookie naming `username`, or None."""
    if not cookie:
        return None
    try:
        named, nonce = _device_serializer(secret).loads(cookie, max_age=DEVICE_SECONDS)
    except (BadSignature, ValueError, TypeError):
        return None
    return nonce if named == username else None


def _device_serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="podmod-device")


# KEYS: counters; ARGV[1]: the window in seconds; ARGV[1 + i]: the limit of KEYS[i]. If any counter
# is at its limit, the longest wait is returned and nothing counts; else each counts one, returns 0.
TAKE_SCRIPT = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    wait = math.max(wait, redis.call('TTL', key), 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 0
"""
# KEYS: counters to give one back to, where they still count.
GIVE_BACK_SCRIPT = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
"""


@dataclass(frozen=True)
class Admission:
    """The outcome of one attempt at the limiter: the counters it counted on, or the wait."""

    counted: tuple[str, ...]
    wait: int | None


class LoginLimiter:
    """Sign-in attempts counted in Redis for web.login_window seconds from the first one: a browser
    with a device cookie of the account per device, any other per account and per network. Counting
    and checking are one step (a Lua script), so parallel guesses get no more password checks than
    the limit; a right password gives its count back. At the limit nothing is checked."""

    def __init__(self, rconn: redis.Redis, config: Config) -> None:
        self.rconn = rconn
        self.window = config["web.login_window"]
        self.per_account = config["web.login_max_failures"]
        self.per_ip = config["web.login_max_failures_per_ip"]
        self.take = rconn.register_script(TAKE_SCRIPT)  # run by SHA once Redis has it
        self.give = rconn.register_script(GIVE_BACK_SCRIPT)

    @staticmethod
    def _user_key(username: str) -> str:
        return f"{LIMIT_PREFIX}user:{username.strip().lower()[:100]}"

    @staticmethod
    def _device_key(nonce: str) -> str:
        return f"{LIMIT_PREFIX}device:{nonce[:64]}"

    def _take(self, keys: list[str], limits: list[int]) -> Admission:
        wait = int(self.take(keys=keys, args=[self.window, *limits]))
        return Admission(counted=() if wait else tuple(keys), wait=wait or None)

    def admit(self, username: str, ip: str, device: str | None) -> Admission:
        """Count this attempt, or refuse it: a known device by its own count while under the
        limit (a stranger's failures never reach it); at its limit it is an unknown browser."""
        if device:
            admission = self._take([self._device_key(device)], [self.per_account])
            if admission.wait is None:
                return admission
        return self._take(
            [self._user_key(username), f"{LIMIT_PREFIX}ip:{network_of(ip)}"],
            [self.per_account, self.per_ip],
        )

    def give_back(self, admission: Admission) -> None:
        """The attempt was right: it does not count as a failure."""
        if admission.counted:
            self.give(keys=list(admission.counted))

    def succeeded(self, username: str, device: str | None) -> None:
        """Signed in: the account's failures, and this device's, are forgiven."""
        keys = [self._user_key(username)] + ([self._device_key(device)] if device else [])
        self.rconn.delete(*keys)

    def first_refusal(self, username: str, ip: str, wait: int) -> bool:
        """True once per window for this typed name and address: the refusal worth an audit row."""
        key = f"{LIMIT_PREFIX}refused:{network_of(ip)}:{username.strip().lower()[:100]}"
        return bool(self.rconn.set(key, 1, ex=max(wait, 1), nx=True))
