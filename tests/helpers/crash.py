"""A crash harness: run a real manifest with the CLI, SIGKILL it at chosen points, run it again.

A kill point is a condition on the outputs folder that is true only while a
particular piece of work is in progress (a generation's scratch folder, a
hosted task's journal, a download's ``.part`` file, a ``.partial`` file of a
chapter, the M4B, an ACX MP3, the results table). The harness polls for it
every millisecond and kills the run the moment it holds: no hooks in the code under
test. A chain of launches moves through the points in the order the work
reaches them; each launch resumes from what the killed one left.

The kill is a SIGKILL of the run's own process, as the OOM killer or a
preempted machine delivers it: whatever the run started (its temporary
Prefect API, ffmpeg) must end with it. Anything of the launch's process
group still alive a few seconds later is a leak, reported in ``Launch.leaked``.

After every kill, what is on disk must be either finished and right or
plainly unfinished: every store record's media has the recorded size, and
every delivered file equals the uninterrupted run's byte for byte.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mediamill.core.processes import child_options

from .cli import cli_env
from .hosted import WIRO_KEY, WIRO_SECRET
from .hosted import wiro_env as wiro_env_of

# Written anew by every run (timings, absolute paths): compared by content, not bytes.
VOLATILE = {"results.csv", "results.parquet", "qc.json", "qc.md", "summary.json", ".stitch.json", ".produced.json"}


@dataclass(frozen=True)
class KillPoint:
    name: str
    holds: Callable[[Path, float], bool]  # on the outputs root, given when this launch started


def _fresh(paths, since: float) -> bool:
    """Any of ``paths`` made by this launch (a killed launch's leftovers do not count)."""
    try:
        return any(p.stat().st_mtime >= since for p in paths)
    except OSError:
        return False  # it vanished while looked at: its work moved on


def _made(pattern: str, under: str) -> Callable[[Path, float], bool]:
    def holds(out: Path, since: float) -> bool:
        base = out / under
        return base.is_dir() and _fresh(base.rglob(pattern), since)

    return holds


def _generating(done: int, journaled: int = 0) -> Callable[[Path, float], bool]:
    """A generation in progress after ``done`` rows were finished, with ``journaled`` hosted tasks noted."""

    def holds(out: Path, since: float) -> bool:
        store = out / ".store"
        if not (store / "tmp").is_dir() or not _fresh((store / "tmp").iterdir(), since):
            return False
        if journaled and sum(1 for _ in (store / "journal").glob("[!.]*.json")) < journaled:
            return False
        return sum(1 for _ in (store / "objects").rglob("[!.]*.json")) >= done  # whole records only

    return holds


def kill_points(name: str, hosted_rows: int) -> list[KillPoint]:
    """The points a chain tries, in the order a run reaches them."""
    return [
        KillPoint("generation (first row)", _generating(0)),
        KillPoint("generation (after two rows)", _generating(2)),
        KillPoint("hosted tasks in flight", _generating(0, journaled=hosted_rows)),
        KillPoint("hosted download", _made("*.part", ".store/tmp")),
        KillPoint("generation (after four rows)", _generating(4)),
        KillPoint("writing the results", _made(".results.*.partial.*", name)),
        KillPoint("stitching a chapter", _made(".*.partial.*", f"{name}/chapters")),
        KillPoint("muxing the M4B", _made(f".{name}.*.partial.m4b", name)),
        KillPoint("mastering an ACX MP3", _made(".*.partial.mp3", f"{name}/acx")),
        KillPoint("writing the QC report", _made(".qc.*.partial.*", name)),
        KillPoint("writing the run summary", _made(".summary.*.partial.*", name)),
    ]


@dataclass
class Launch:
    point: str | None
    killed: bool
    returncode: int | None
    seconds: float
    log: str
    leaked: list[str]  # processes the launch started that outlived it (command lines)


LEAK_GRACE_S = 10.0  # how long the children of a dead run may take to go


def launch(manifest: Path, out: Path, env: dict[str, str], points: list[KillPoint], timeout: float = 300) -> Launch:
    """Run once; kill at the first of ``points`` that holds. Returns which (None: the run ended)."""
    log_path = out.parent / f"{out.name}-launch-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "mediamill.cli", "run", str(manifest), "--outputs", str(out), "-v"]
    since = time.time() - 0.01  # file times are the kernel's clock, a tick behind
    start = time.monotonic()
    fired = None
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, **child_options()
        )
        try:
            while proc.poll() is None and fired is None:
                if time.monotonic() - start > timeout:
                    raise TimeoutError(f"run did not end within {timeout} s")
                fired = next((p for p in points if p.holds(out, since)), None)
                if fired is not None:
                    os.kill(proc.pid, signal.SIGKILL)  # the run alone: what it started must go by itself
                else:
                    time.sleep(0.001)
            proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    leaked = survivors(proc.pid, LEAK_GRACE_S)
    if leaked:
        os.killpg(proc.pid, signal.SIGKILL)  # leave the machine clean for the next launch
        survivors(proc.pid, LEAK_GRACE_S)
    return Launch(
        fired.name if fired else None,
        fired is not None,
        None if fired else proc.returncode,
        time.monotonic() - start,
        log_path.read_text(errors="replace"),
        leaked,
    )


def group_members(pgid: int) -> list[str]:
    """Command lines of the live processes (zombies aside) in process group ``pgid``."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(" ".join(p.info["cmdline"] or [])[:200])
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def survivors(pgid: int, grace_s: float) -> list[str]:
    """What of a launch's process group is still alive after ``grace_s`` (empty at once when all is gone)."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = group_members(pgid)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def env_for(home: Path, own_api: bool = False, **extra: str) -> dict[str, str]:
    return cli_env(home, own_api, **extra)


# The production the crash test and benchmark kill: Piper without its random noise (deterministic, so a
# resumed book can be compared byte for byte) and two rows on the Wiro emulator, as audiobook + ACX.
KEY, SECRET = WIRO_KEY, WIRO_SECRET
NOISELESS = '"{""noise_scale"": 0, ""noise_w_scale"": 0}"'
MANIFEST = f"""id,chapter,text,backend,options
p1,The Lamp,The lamp was lit at dusk.,piper,{NOISELESS}
p2,,Then the street went dark again.,piper,{NOISELESS}
h1,,A hosted voice reads this line.,wiro,
h2,The Morning,Morning came slowly to the town.,wiro,
p3,,Nobody spoke of the lamp that night.,piper,{NOISELESS}
p4,,And the town slept on until the bells.,piper,{NOISELESS}
"""
HOSTED_ROWS = 2


def lamp_book(work: Path) -> Path:
    """Write the production's manifest and sidecar under ``work``; return the manifest."""
    book = work / "book"
    book.mkdir()
    manifest = book / "lamp.csv"
    manifest.write_text(MANIFEST)
    (book / "lamp.toml").write_text('profiles = ["audiobook", "acx"]\n')
    return manifest


def wiro_env(home: Path, wiro_url: str, own_api: bool = False) -> dict[str, str]:
    """The CLI's environment against the emulator, with quick polls and retries; ``own_api``: each launch
    starts its temporary Prefect API, as a user's run does (else launches share the test process's)."""
    # The emulator answers every row with one sample file, which does not say the row's text: checking
    # takes by ear is off here, as in the rest of the suite, so no hosted row is taken (and paid for) again.
    return env_for(
        home,
        own_api,
        **wiro_env_of(
            wiro_url,
            WIRO_POLL_INITIAL_S="0.1",
            WIRO_POLL_MAX_S="0.3",
            MEDIAMILL_RETRY_DELAY_S="0.05",
            MEDIAMILL_VERIFY="off",
        ),
    )


def deliverables(out: Path, name: str) -> dict[str, bytes]:
    """Every finished file a run delivers (hidden work files left out), by path."""
    folder = out / name
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.name not in VOLATILE
    }


def store_problems(out: Path) -> list[str]:
    """Store records whose media is missing or not the recorded size (a partial file taken as done).

    A kill mid-write may leave a record's hidden ``.<key>.<hex>.partial.json``: plainly unfinished, swept by
    the next run, and not a record; only the final names are.
    """
    problems = []
    for record in (out / ".store" / "objects").rglob("[!.]*.json"):
        doc = json.loads(record.read_text())
        media = record.with_name(doc["file"])
        if not media.is_file() or media.stat().st_size != doc["size"]:
            problems.append(f"{record.name}: media missing or not {doc['size']} bytes")
    return problems


def results_rows(out: Path, name: str) -> list[dict[str, str]]:
    with (out / name / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def partial_files(out: Path) -> list[str]:
    """Work files a finished run must not leave among its deliverables."""
    return [str(p) for p in out.rglob("*") if p.is_file() and (".partial" in p.name or p.name.endswith(".part"))]


def leftovers(out: Path) -> list[str]:
    """What a finished run leaves beyond its outputs and the store's records: temporary files, scratch folders."""
    found = partial_files(out) + [str(p) for p in out.rglob(".*.link")]
    tmp = out / ".store" / "tmp"
    if tmp.is_dir():
        found += [str(p) for p in tmp.iterdir()]
    return sorted(set(found))
