"""Errors shown to people: each carries one sentence saying what is wrong and what to do."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first line of an error's message (or its type where it has none), fit to quote."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class PodmodError(Exception):
    """Base of every error whose message is meant for a podmin, not a traceback."""

    exit_code = 1


class ConfigError(PodmodError):
    """A configuration value is missing or wrong."""

    exit_code = 2


class ServiceUnavailable(PodmodError):
    """PostgreSQL or Redis cannot be reached."""

    exit_code = 3
    transient = True  # False where the server answered and refused (a wrong database URL)


class NotADiasporaDatabase(PodmodError):
    """The configured database lacks the diaspora* tables podmod reads."""

    exit_code = 2


class SchemaOutOfDate(PodmodError):
    """podmod's own schema is missing or older than this version of podmod."""

    exit_code = 2


class MigrationFailed(PodmodError):
    """A migration of podmod's schema failed on the data or objects it met; nothing was applied."""


class DeliveryFailed(PodmodError):
    """A mail or webhook was not delivered; the message says why in one sentence. `permanent`:
    trying again cannot help (the server refused the address for good)."""

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status = status
