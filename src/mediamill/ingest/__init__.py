"""Manuscripts -> manifests: ``mediamill import``.

``import_manuscript(source, out_dir, options)`` reads an EPUB (2 or 3), DOCX,
Markdown, HTML, plain-text or PDF manuscript and writes ``<name>.csv`` (rows
``id, chapter, text, pause_after, source``) and ``<name>.toml`` (sidecar)
into ``out_dir``, with the cover image when the source has one, and returns
the rows and a report. Bad input raises ``IngestError`` and writes nothing.
"""

from .cli import add_import_command, cmd_import
from .importer import ImportResult, import_manuscript
from .model import IngestError
from .options import ImportOptions
from .report import ImportReport

__all__ = [
    "ImportOptions",
    "ImportReport",
    "ImportResult",
    "IngestError",
    "add_import_command",
    "cmd_import",
    "import_manuscript",
]
