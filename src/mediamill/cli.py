"""``mediamill run | validate | report``: the command line over the same flows.

Exit codes: 0 success, 1 rows failed (or a report/validation found problems),
2 the manifest is invalid or the command was misused, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

# Quiet defaults for an interactive tool; a user's own settings win.
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry calls from an offline machine
    "DO_NOT_TRACK": "1",  # nor from the client (and no notice about it on the terminal)
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",  # the ephemeral server's shutdown chatter
}

console = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_problems(error: Any) -> None:
    console.print(f"[bold red]{error.path}[/]: {len(error.problems)} problem(s)")
    for problem in error.problems:
        console.print(f"  - {problem}", markup=False)


def cmd_validate(args: argparse.Namespace) -> int:
    from .manifest import ManifestError
    from .plan import validate

    try:
        plan = validate(args.manifest, args.backend)
    except ManifestError as exc:
        _print_problems(exc)
        return 1
    backends = sorted({j.backend for j in plan.jobs})
    console.print(
        f"[green]ok[/] {args.manifest}: {len(plan.jobs)} rows, {len(plan.chapters)} chapters, "
        f"backends: {', '.join(backends)}"
    )
    return 0


def _run_with_progress(args: argparse.Namespace) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .core import progress
    from .flows import produce

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    ids: dict[str, Any] = {}
    finished: dict[str, Any] = {}

    def on_event(event: str, data: dict[str, Any]) -> None:
        if event == "planned":
            ids["task"] = bar.add_task(data["name"], total=data["total"], completed=data["cached"], failed=0)
        elif event == "row" and "task" in ids:
            failed = data["result"].status == "failed"
            task = bar.tasks[0]
            bar.update(ids["task"], advance=1, failed=task.fields["failed"] + failed)
        elif event == "finished":
            finished.update(data["summary"])

    async def main() -> Any:
        # Ctrl-C cancels this task: every row sees CancelledError at its await and stops its hosted work.
        _running["loop"], _running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        # Named after the manifest in the Prefect UI, as the sweep names its runs.
        return await produce.with_options(flow_run_name=f"produce:{Path(args.manifest).stem}")(
            manifest=str(args.manifest),
            backend=args.backend,
            outputs=str(args.outputs) if args.outputs else None,
            profiles=args.profile or None,
            shards=args.shards,
            return_state=True,
        )

    progress.subscribe(on_event)
    try:
        with bar:
            state = asyncio.run(main())
        return state, finished or None
    finally:
        progress.unsubscribe(on_event)


_running: dict[str, Any] = {}  # the event loop and task of the run in progress, for the signal handler


def _exit_interrupted() -> None:
    # os._exit: Prefect's worker threads would otherwise keep retrying a dead server.
    console.print("[yellow]interrupted[/]: finished rows are kept; run the same command to resume")
    sys.stderr.flush()
    os._exit(130)


# Time an interrupted run gets to cancel hosted work and report its state.
GRACE_WITH_SERVER_S = 15.0
GRACE_EPHEMERAL_S = 3.0  # the temporary server died with the same Ctrl-C: nothing to report to


def _exit_after(delay: float, hard_deadline: float) -> None:
    """Exit after ``delay``, but not while hosted tasks are still being stopped (up to the deadline)."""

    def check() -> None:
        from .backends import hosted

        if hosted.stops_in_flight() and time.monotonic() < hard_deadline:
            _exit_after(0.25, hard_deadline)
        else:
            _exit_interrupted()

    timer = threading.Timer(delay, check)
    timer.daemon = True
    timer.start()


def _on_interrupt(signum: int, frame: Any) -> None:
    """First Ctrl-C: stop the run gracefully; second, or a stalled shutdown: exit now.

    Ctrl-C also stops Prefect's temporary server (same process group), and
    Prefect's client would then retry reporting the interrupted run for a
    minute. Exiting hard is safe: every file mediamill writes is atomic.
    """
    from .flows.limits import server_configured

    if getattr(_on_interrupt, "armed", False):
        _exit_interrupted()
    _on_interrupt.armed = True  # type: ignore[attr-defined]  # a flag kept on the function object
    console.print("[yellow]stopping…[/] (Ctrl-C again to quit at once)")
    grace = GRACE_WITH_SERVER_S
    if not server_configured():
        grace = GRACE_EPHEMERAL_S
        logging.disable(logging.CRITICAL)  # only failed reports to the dead server would follow
    _exit_after(grace, time.monotonic() + GRACE_WITH_SERVER_S)
    if "task" in _running:
        # Cancel rather than raise here: a KeyboardInterrupt raised mid-step would skip a row's cleanup.
        _running["loop"].call_soon_threadsafe(_running["task"].cancel)
    else:
        raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    for key, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if not args.verbose:
        # Only the terminal is quieted: the API, and so the Prefect UI, still gets every log.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from .manifest import ManifestError
    from .plan import validate

    try:  # refuse a bad manifest before anything starts
        validate(args.manifest, args.backend)
    except ManifestError as exc:
        _print_problems(exc)
        return 2

    from .flows.tempserver import own_api

    signal.signal(signal.SIGINT, _on_interrupt)
    signal.signal(signal.SIGTERM, _on_interrupt)  # a batch system stopping the job: same orderly stop
    try:
        with own_api():  # a temporary API that dies with this process, unless a server is configured
            state, summary = _run_with_progress(args)
    except (KeyboardInterrupt, asyncio.CancelledError):
        _exit_interrupted()
    if getattr(_on_interrupt, "armed", False):
        _exit_interrupted()  # interrupted, though the flow had already returned
    if summary is None:
        label = "[yellow]cancelled[/]" if state.is_cancelled() else "[bold red]run failed[/]"
        console.print(f"{label}: {state.message}")
        return 1
    _print_summary(summary)
    if state.is_failed():
        console.print(f"[bold red]{state.message}[/]")
        return 1
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    for key, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from .flows import sweep
    from .flows.tempserver import own_api

    with own_api():
        state: Any = asyncio.run(  # the flow run's final prefect State
            sweep(  # type: ignore[arg-type]  # prefect types it Awaitable; it is a coroutine
                inbox=str(args.inbox),
                backend=args.backend,
                outputs=str(args.outputs) if args.outputs else None,
                profiles=args.profile,
                return_state=True,
            )
        )
    console.print(f"[bold]{'done' if state.is_completed() else 'failed'}[/]: {state.message}")
    return 0 if state.is_completed() else 1


def _print_summary(s: dict[str, Any]) -> None:
    console.print(
        f"[bold]{s['name']}[/]: {s['rows']} rows — {s['done']} done, {s['cached']} cached, "
        f"{s['failed']} failed; {s['audio_h'] * 60:.1f} min of audio, ${s['cost_usd']:.4f}, "
        f"{s['elapsed_s']:.1f} s"
    )
    if s.get("cost_not_reported"):
        console.print(
            f"  [yellow]{s['cost_not_reported']} row(s) without a reported cost[/] (price them in MEDIAMILL_PRICES)"
        )
    for rid, err in s.get("failures", [])[:20]:
        console.print(f"  [red]failed[/] {rid}: {err}", markup=True, highlight=False)
    if s.get("m4b"):
        console.print(f"  book: {s['m4b']}")
    for profile, ok in (s.get("qc") or {}).items():
        label = "[green]pass[/]" if ok else "[bold red]FAIL[/]"
        console.print(f"  {profile}: {label} (see {Path(s['outputs']) / 'qc.md'})")
    for failure in (s.get("undelivered") or [])[:10]:
        console.print(f"    [red]{failure}[/]", highlight=False)
    console.print(f"  results: {Path(s['outputs']) / 'results.csv'}")


def cmd_report(args: argparse.Namespace) -> int:
    from .config import settings
    from .report import read_results, summarise, summary_markdown

    target = Path(args.target)
    if (target / "results.parquet").is_file():
        folder = target
    else:
        root = Path(args.outputs) if args.outputs else settings().outputs
        folder = root / (target.stem if target.suffix else target.name)
    if not (folder / "results.parquet").is_file():
        console.print(f"[red]no results at {folder}[/]: run the manifest first")
        return 2
    rows = read_results(folder)
    try:  # the run's wall time is only in its summary; per-row times add up otherwise
        wall = json.loads((folder / "summary.json").read_text())["elapsed_s"]
    except (OSError, ValueError, KeyError):
        wall = None
    print(summary_markdown(folder.name, summarise(rows, wall_s=wall)), end="")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


def cmd_voices(args: argparse.Namespace) -> int:
    from .voices import DEFAULT_FOLDER, add_voice, list_voices, remove_voice, voice_dirs

    folder = Path(args.dir) if args.dir else (voice_dirs()[:1] or [DEFAULT_FOLDER])[0]
    if args.action == "add":
        transcript = args.text
        if args.text_file:
            transcript = Path(args.text_file).read_text(encoding="utf-8")
        try:
            voice = add_voice(args.name, Path(args.audio), transcript, folder)
        except (ValueError, OSError) as exc:
            console.print(f"[red]cannot add voice[/]: {exc}")
            return 2
        note = "with transcript" if voice.transcript else "no transcript: reference-only cloning"
        console.print(f"added [bold]{voice.name}[/]: {voice.audio} ({note})")
        return 0
    if args.action == "remove":
        if remove_voice(args.name, folder):
            console.print(f"removed {args.name} from {folder}")
            return 0
        console.print(f"[red]no voice {args.name!r} in {folder}[/]")
        return 1
    from .media.probe import probe

    voices = list_voices([folder] if args.dir else [folder, *voice_dirs()[1:]])
    for voice in voices:
        text = (voice.transcript or "—")[:60]
        print(f"{voice.name}\t{probe(voice.audio).duration_s:.1f} s\t{voice.audio}\t{text}")
    if not voices:
        console.print(f"no voices in {folder}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Judge takes against texts; exit 0 when every take says its text, 1 when any does not, 2 for bad input."""
    from .config import settings
    from .verify.pairs import PairsError, check_pairs, read_pairs
    from .verify.takes import verifier

    try:
        pairs = read_pairs(args.pairs)
    except PairsError as exc:
        console.print(f"[bold red]{exc.path}[/]: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            console.print(f"  - {problem}", markup=False)
        return 2
    engine = args.engine or settings().verify
    if engine == "off":
        engine = "pocketsphinx"
    judged = verifier(engine)
    failed = 0
    for result in check_pairs(pairs, judged):
        failed += not result["ok"]
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            label = "[green]pass[/]" if result["ok"] else f"[bold red]{result['verified']}[/]"
            console.print(f"{label} {result['audio']}", highlight=False)
            if not result["ok"]:
                console.print(f"    {result['reason']}", markup=False)
                for run in result["missing_runs"]:
                    console.print(f"    missing at {run['start_s']:.1f} s: {' '.join(run['words'])}", markup=False)
                for run in result["extra_runs"]:
                    console.print(f"    extra speech at {run['start_s']:.1f} s ({run['seconds']:.1f} s)", markup=False)
    if not args.json:
        console.print(f"{len(pairs) - failed} of {len(pairs)} takes say their text ({judged.label})")
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress

    import uvicorn

    from .serve import ServeSettings, create_app

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": args.host, "port": args.port, "engine": args.engine}.items() if v is not None
    }
    if args.voices:
        overrides["voices"] = args.voices
    if args.prompts:
        overrides["prompts"] = args.prompts
    cfg = ServeSettings(**overrides)
    if not cfg.voices:
        from .voices import DEFAULT_FOLDER, voice_dirs

        cfg.voices = voice_dirs() or [DEFAULT_FOLDER]
    try:
        loopback = ipaddress.ip_address(cfg.host).is_loopback
    except ValueError:
        loopback = cfg.host == "localhost"
    if not loopback and cfg.api_key is None:
        console.print(f"[yellow]warning[/]: serving on {cfg.host} with no API key; set MEDIAMILL_SERVE_API_KEY")
    try:
        app = create_app(cfg)
    except Exception as exc:  # noqa: BLE001 - a missing extra or bad setting: say so, no traceback
        console.print(f"[red]cannot serve[/]: {exc}")
        return 2
    console.print(f"serving {cfg.engine} on http://{cfg.host}:{cfg.port} (voices: {', '.join(map(str, cfg.voices))})")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info" if args.verbose else "warning")
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .profiles import PROFILES

    parser = argparse.ArgumentParser(prog="mediamill", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mediamill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="produce everything a manifest describes")
    run.add_argument("manifest", type=Path)
    run.add_argument(
        "--shards",
        type=_count,
        metavar="N",
        help="on a fleet's Prefect server, spread the rows over N runs of the pool's workers "
        "(default: by MEDIAMILL_FLEET_ROWS and the workers online; 1: all here)",
    )
    swp = sub.add_parser("sweep", help="produce every new or changed manifest under an inbox folder")
    swp.add_argument("inbox", type=Path)
    for command, func in ((run, cmd_run), (swp, cmd_sweep)):
        command.add_argument("--backend", help="backend for rows that name none (default: piper)")
        command.add_argument("--outputs", type=Path, help="outputs root (default: $MEDIAMILL_OUTPUTS or ./outputs)")
        command.add_argument(
            "--profile",
            action="append",
            choices=list(PROFILES),
            help="delivery profile (repeatable; default: each sidecar's profiles, else audiobook)",
        )
        command.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs on the terminal")
        command.set_defaults(func=func)

    val = sub.add_parser("validate", help="check a manifest and report every problem")
    val.add_argument("manifest", type=Path)
    val.add_argument("--backend", help="backend for rows that name none")
    val.set_defaults(func=cmd_validate)

    rep = sub.add_parser("report", help="print the summary of a finished run")
    rep.add_argument("target", help="a manifest, its name, or its outputs folder")
    rep.add_argument("--outputs", type=Path, help="outputs root")
    rep.set_defaults(func=cmd_report)

    voices = sub.add_parser("voices", help="the voice registry: named recordings for cloning")
    voices.add_argument("--dir", help="registry folder (default: first of $MEDIAMILL_VOICES, else manifests/voices)")
    vsub = voices.add_subparsers(dest="action", required=True)
    add = vsub.add_parser("add", help="add (or replace) a voice")
    add.add_argument("name")
    add.add_argument("audio", help="a recording: wav, flac, mp3, m4a or ogg")
    add.add_argument("--text", help="what the recording says (enables prompt-continuation cloning)")
    add.add_argument("--text-file", help="read the transcript from a file")
    vsub.add_parser("list", help="list voices")
    rm = vsub.add_parser("remove", help="remove a voice")
    rm.add_argument("name")
    voices.set_defaults(func=cmd_voices)

    from .ingest.cli import add_import_command

    add_import_command(sub)

    ver = sub.add_parser("verify", help="judge takes against their texts (audio,text[,language] rows of a CSV)")
    ver.add_argument("pairs", type=Path, help="a CSV with columns audio (relative to it) and text, optionally language")
    ver.add_argument("--engine", choices=["pocketsphinx", "whisper"], help="recogniser (default: MEDIAMILL_VERIFY)")
    ver.add_argument("--json", action="store_true", help="one JSON object per take, per line")
    ver.set_defaults(func=cmd_verify)

    serve = sub.add_parser("serve", help="serve an OpenAI-style speech API (/v1/audio/speech) over a local engine")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--engine", choices=["voxcpm", "piper"], help="engine (default voxcpm; model from VOXCPM_MODEL)")
    serve.add_argument(
        "--voices", type=Path, action="append", help="voice registry folder (repeatable; first takes uploads)"
    )
    serve.add_argument(
        "--prompts", type=Path, action="append", help="another folder prompt_wav_path may read (repeatable)"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .config import SettingsError, settings

    args = build_parser().parse_args(argv)
    try:
        settings()  # every MEDIAMILL_* variable is checked before any work, not when a row first reads it
    except SettingsError as exc:
        console.print(f"[red]settings[/]: {exc}")
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
