"""The hosted services' test credentials, and the environment that points a backend at an emulator."""

from __future__ import annotations

from mediamill.backends import forget

WIRO_KEY, WIRO_SECRET = "wiro-test-key-0123456789", "wiro-test-secret-abcdefghij"
PIXAZO_KEY = "pixazo-test-key-0123456789"
# Quick polls and retries: an emulator's tasks take tenths of a second, not minutes.
WIRO_QUICK = {"WIRO_POLL_INITIAL_S": "0.05", "WIRO_POLL_MAX_S": "0.2", "WIRO_CONCURRENCY_RETRY_S": "0.05"}


def wiro_env(url: str, secret: str | None = WIRO_SECRET, **extra: str) -> dict[str, str]:
    """WIRO_* settings for the emulator at ``url`` (key and, unless None, secret), quick polls, ``extra`` last."""
    env = {"WIRO_BASE_URL": url, "WIRO_API_KEY": WIRO_KEY, **WIRO_QUICK, **extra}
    if secret is not None:
        env["WIRO_API_SECRET"] = secret
    return env


def pixazo_env(url: str, **extra: str) -> dict[str, str]:
    """PIXAZO_* settings for the emulator at ``url``, ``extra`` last."""
    return {"PIXAZO_BASE_URL": url, "PIXAZO_API_KEY": PIXAZO_KEY, **extra}


def point(monkeypatch, backend: str, env: dict[str, str]) -> None:
    """Set ``env`` for this test and let go of ``backend``'s instance, so it is made anew with it (no credit
    breaker, upload memory or clients from another test)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forget(backend)
