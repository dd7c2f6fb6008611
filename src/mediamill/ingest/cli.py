"""``mediamill import SOURCE --out DIR``: the command line over ``import_manuscript``.

``add_import_command(subparsers)`` registers the command on mediamill's
parser; ``cmd_import(args)`` runs it. Exit codes follow mediamill's: 0 done,
2 the manuscript cannot be imported or the options are wrong (nothing is
written then). The report goes to standard output (``--json`` for data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .matter import SKIPPED_KINDS
from .model import IngestError
from .options import DEFAULT_MAX_CHARS, ImportOptions


def add_import_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "import", help="turn a manuscript (EPUB, DOCX, Markdown, HTML, text, PDF) into a manifest"
    )
    p.add_argument("source", type=Path, help="the manuscript file")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.csv, <name>.toml and the cover")
    p.add_argument("--name", help="manifest name (default: from the source's file name)")
    p.add_argument(
        "--format",
        choices=["epub", "docx", "markdown", "html", "text", "pdf"],
        help="read the source as this format (default: from its content and extension)",
    )
    p.add_argument(
        "--unit", choices=["paragraph", "sentence"], default="paragraph", help="one row per ... (default paragraph)"
    )
    p.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        help=f"longest row; longer paragraphs are split at sentences (default {DEFAULT_MAX_CHARS})",
    )
    p.add_argument(
        "--notes", choices=["skip", "end"], default="skip", help="footnote texts: skip, or read at the chapter's end"
    )
    p.add_argument("--alt-text", action="store_true", help="read images' alt text")
    p.add_argument(
        "--tables", choices=["skip", "read"], default="skip", help="tables: skip (listed), or read row by row"
    )
    p.add_argument("--no-headings", action="store_true", help="do not read headings (chapter titles) as rows")
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="KIND",
        help="read a kind of front/back matter anyway (repeatable; 'all' for every kind): "
        + ", ".join(k for k in SKIPPED_KINDS),
    )
    p.add_argument(
        "--toc-depth", type=int, default=0, help="split chapters at TOC/heading levels up to N (default: decide)"
    )
    p.add_argument(
        "--backend",
        action="append",
        dest="backends",
        metavar="NAME",
        help="estimate the cost on this backend (repeatable; default piper)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)
    return p


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_manuscript

    keep = {k.strip().lower() for value in args.keep for k in value.split(",") if k.strip()}
    unknown = keep - set(SKIPPED_KINDS) - {"all"}
    if unknown:
        print(f"mediamill import: unknown --keep kind(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    try:
        options = ImportOptions(
            unit=args.unit,
            max_chars=args.max_chars,
            notes=args.notes,
            alt_text=args.alt_text,
            tables=args.tables,
            headings=not args.no_headings,
            keep=frozenset(keep),
            toc_depth=args.toc_depth,
            backends=tuple(args.backends or ["piper"]),
            name=args.name,
            format=args.format,
        )
        result = import_manuscript(args.source, args.out, options)
    except (IngestError, ValueError) as exc:
        print(f"mediamill import: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mediamill import: {exc.filename or args.source}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.report.to_dict(), indent=2) if args.json else result.report.to_text())
    return 0
