"""Keep secrets out of anything mediamill writes or shows.

Credentials come from the environment; any value of a variable whose name
says it is secret is masked wherever an error message or log line is made.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words


def secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, "***")
    return text


def error_line(exc: BaseException, limit: int = 500) -> str:
    """One line describing an exception, secrets masked, for tables and summaries."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if not message.startswith(type(exc).__name__) and type(exc).__module__ == "builtins":
        message = f"{type(exc).__name__}: {message}"
    message = redact(message)
    return message if len(message) <= limit else message[: limit - 1] + "…"
