"""The sidecar ``<name>.toml`` an import writes beside its manifest.

Keys: ``title``, ``author``, ``language``, ``cover`` (the extracted cover
image, relative to the manifest), ``pause_after`` and ``chapter_pause`` (the
defaults for rows a producer adds), ``narrator`` left commented for the
producer, and a ``[source]`` table: the source's file name, format, SHA-256,
and the unit and row limit it was imported with. On a re-import an existing
sidecar's settings win (a producer's title, narrator, profiles ... stay);
only ``[source]`` is replaced. ``render_sidecar`` returns the file's bytes; the
importer writes them together with the manifest.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

HEADER = "# Production settings for {manifest} (written by `mediamill import`; edit freely)\n"


def read_existing(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def render(manifest_name: str, settings: dict[str, Any], source: dict[str, Any]) -> str:
    top = {k: v for k, v in settings.items() if v is not None and not isinstance(v, dict)}
    tables = {k: v for k, v in settings.items() if isinstance(v, dict) and k != "source"}
    out = [HEADER.format(manifest=manifest_name), tomli_w.dumps(top)]
    if "narrator" not in top:
        out.append('# narrator = ""   # who reads the book: the M4B\'s narrator tag\n')
    for name, table in tables.items():
        out.append("\n" + tomli_w.dumps({name: table}))
    out.append("\n" + tomli_w.dumps({"source": source}))
    return "".join(out)


def render_sidecar(path: Path, manifest_name: str, generated: dict[str, Any], source: dict[str, Any]) -> bytes:
    """The sidecar for ``path``: the settings ``generated`` under those of the sidecar already there."""
    existing = read_existing(path) if path.exists() else {}
    existing.pop("source", None)
    merged = {**{k: v for k, v in generated.items() if v is not None}, **existing}
    text = render(manifest_name, merged, source)
    tomllib.loads(text)  # never write a sidecar mediamill could not read
    return text.encode("utf-8")
