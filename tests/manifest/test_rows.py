"""Rows across workers: claims on content keys, retries, batches."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap

from mediamill.backends import get_backend
from mediamill.config import RetryPolicy
from mediamill.generate import make_batches, retry_delay, run_batch
from mediamill.plan import validate
from mediamill.store import Store

COUNTING = "tests.helpers.fakes:CountingBackend"
FLAKY = "tests.helpers.fakes:FlakyBackend"
LOG = logging.getLogger("test")


def jobs_of(write_manifest, n: int, backend: str = COUNTING, name: str = "rows"):
    body = "".join(f"r{i},Words for row {i} of {name}.,{backend}\n" for i in range(n))
    return [[job] for job in validate(write_manifest("id,text,backend\n" + body, name=name)).jobs]


def test_two_workers_on_one_store_generate_each_key_once(write_manifest, tmp_path, monkeypatch):
    groups = jobs_of(write_manifest, 12, name="shared")
    backend = get_backend(COUNTING)
    monkeypatch.setattr(backend, "hold_s", 0.05)
    before = dict(backend.calls)
    policy = RetryPolicy(retries=0)

    async def both():
        # Two Store objects: nothing shared between the "workers" but the folder.
        return await asyncio.gather(
            run_batch(groups, Store(tmp_path / "out"), policy, LOG),
            run_batch(groups, Store(tmp_path / "out"), policy, LOG),  # same order: they collide on every key
        )

    first, second = asyncio.run(both())
    generated = [o.jobs[0].id for o in first + second if o.fresh]
    assert sorted(generated) == sorted(g[0].id for g in groups)  # every key made exactly once, by someone
    assert all(o.ok for o in first + second)  # and every row ended in the store for both
    assert all(backend.calls[g[0].key] - before.get(g[0].key, 0) == 1 for g in groups)
    assert not any((tmp_path / "out" / ".store" / "claims").iterdir())  # no lock files left behind


def test_a_killed_holder_leaves_no_claim(tmp_path):
    store = Store(tmp_path)
    key = "cd" + "1" * 62
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from mediamill.store import Store
            assert Store({str(tmp_path)!r}).claim({key!r}).try_acquire()
            print("held", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not store.claim(key).try_acquire()  # taken by a live process
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        claim = store.claim(key)
        assert claim.try_acquire()  # the kernel let go of the dead holder's lock
        claim.release()
        assert not claim.path.exists()
    finally:
        holder.kill()


def test_rows_retry_with_their_backend_policy(write_manifest, tmp_path):
    groups = jobs_of(write_manifest, 1, backend=FLAKY, name="flaky")
    (outcome,) = asyncio.run(run_batch(groups, Store(tmp_path), RetryPolicy(retries=4, delay_s=0.01, jitter=0), LOG))
    assert outcome.ok and outcome.fresh and outcome.attempts == 3 and len(outcome.errors) == 2
    (outcome,) = asyncio.run(
        run_batch(
            jobs_of(write_manifest, 1, backend=FLAKY, name="flaky2"),
            Store(tmp_path),
            RetryPolicy(retries=1, delay_s=0.01, jitter=0),
            LOG,
        )
    )
    assert not outcome.ok and outcome.attempts == 2 and outcome.error


def test_retry_delays_double_and_jitter_stays_in_bounds():
    policy = RetryPolicy(retries=5, delay_s=1.0, jitter=0.5)
    for retry in (1, 2, 3):
        delays = [retry_delay(policy, retry) for _ in range(200)]
        base = 2 ** (retry - 1)
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert max(delays) - min(delays) > 0.3 * base  # really jittered
    assert retry_delay(RetryPolicy(delay_s=2.0, jitter=0), 3) == 8.0


def test_batches_keep_order_and_give_every_slot_work(write_manifest):
    groups = jobs_of(write_manifest, 10, name="batches")
    batches = make_batches(groups, {COUNTING: 4}, {COUNTING: 2})
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [g[0].id for b in batches for g in b] == [f"r{i}" for i in range(10)]
    assert [len(b) for b in make_batches(groups, {COUNTING: 100}, {COUNTING: 4})] == [3, 3, 3, 1]
    assert [len(b) for b in make_batches(groups, {}, {COUNTING: 4})] == [1] * 10
