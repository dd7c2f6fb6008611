from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers.paths import MANIFESTS

# Keep test runs offline and quiet, whatever the machine's Prefect profile says.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
# In-process flow tests keep concurrency limits in the process: a slot on the test server's SQLite
# costs up to seconds while it is busy recording task runs. Tests of server-side limits say "auto".
os.environ.setdefault("MEDIAMILL_LIMITS", "local")
# Most tests' engines make tones, random-weight speech or a service's sample file, none of which says its
# text: verification is on only where a test asks for it (MEDIAMILL_VERIFY=pocketsphinx).
os.environ.setdefault("MEDIAMILL_VERIFY", "off")
# Digests are remembered in a cache file; the suite keeps its own, away from the user's.
if "MEDIAMILL_CACHE_DIR" not in os.environ:
    os.environ["MEDIAMILL_CACHE_DIR"] = tempfile.mkdtemp(prefix="mediamill-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MEDIAMILL_CACHE_DIR"], True)


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA GPU; on a machine without one they are reported as skipped.

    Files with tests marked ``slow`` (end-to-end runs in subprocesses, minutes each) are handed out first: the
    workers take whole files in this order, so the longest start at once and the short ones fill in around
    them, instead of one long file starting last and running alone.
    """
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not _cuda():
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file's own order is kept


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API (temporary server, SQLite) for the in-process flow tests: the one this test process's
    command line children share (``tests.helpers.cli``), so each worker starts one server, not two.

    To the flows in this process it is a configured server, not their temporary one: tests of server-side
    limits say ``MEDIAMILL_LIMITS=auto`` and get them."""
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.helpers.cli import shared_api

    with temporary_settings(updates={PREFECT_API_URL: shared_api()}):
        # Code in a context copied before this one (a loop started earlier) sees the server too.
        with prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
            yield
            # What Prefect's background workers hold reaches the server while it is up.
            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("MEDIAMILL_RETRY_DELAY_S", "0.01")
    monkeypatch.setenv("MEDIAMILL_RETRY_JITTER", "0")


@pytest.fixture
def write_manifest(tmp_path):
    """Write a CSV manifest (and optional sidecar) into a fresh folder."""

    def write(text: str, name: str = "book", sidecar: str | None = None) -> Path:
        path = tmp_path / f"{name}.csv"
        path.write_text(text.lstrip("\n"), encoding="utf-8")
        if sidecar is not None:
            (tmp_path / f"{name}.toml").write_text(sidecar, encoding="utf-8")
        return path

    return write


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    """The example audiobook manifest, copied so tests never touch the repo's outputs."""
    dest = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, dest)
    return dest / "audiobook.csv"


@pytest.fixture(scope="session")
def tiny_voxcpm(tmp_path_factory) -> Path:
    """A tiny random VoxCPM2 checkpoint that stops as soon as allowed (see tests/helpers/tiny_voxcpm.py)."""
    from tests.helpers.tiny_voxcpm import build

    return build(tmp_path_factory.mktemp("voxcpm-tiny"), stop="early")


@pytest.fixture(scope="session")
def babbling_voxcpm(tmp_path_factory) -> Path:
    """The same architecture with a stop head that never stops."""
    from tests.helpers.tiny_voxcpm import build

    return build(tmp_path_factory.mktemp("voxcpm-babbling"), stop="never")


@pytest.fixture
def voxcpm_env(monkeypatch, tiny_voxcpm):
    """Point the voxcpm backend at the tiny checkpoint, on one CPU thread."""
    monkeypatch.setenv("VOXCPM_MODEL", str(tiny_voxcpm))
    monkeypatch.setenv("VOXCPM_DEVICE", "cpu")
    monkeypatch.setenv("VOXCPM_CPU_THREADS", "1")
    return tiny_voxcpm


# The take corpus and recognisers the verification tests share (made once per session).
from tests.helpers.verify_takes import sphinx, takes, tiny_whisper  # noqa: E402, F401
