"""How podmod says a count in English, on its pages, in its commands' output and in the audit
log: "1 list match", "3 list matches"."""

from __future__ import annotations


def counted(value: int | None, noun: str, plural: str | None = None) -> str:
    """'1 list match', '3 list matches', '0 reporters', '12,000 cases': the noun agrees with the
    number (a plural of -es where English writes one, else `plural`)."""
    value = value or 0
    if value == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "ch", "sh", "x")) else "s")
    return f"{value:,} {plural}"
