"""Reading EPUB containers and XHTML: what the importer and the read-along builder share.

- ``archive``: ZIP containers read in bounded memory and time (EPUB, DOCX);
- ``xhtml``: parsing content documents, and the anchors that point into them;
- ``package``: the package document (manifest, spine, metadata);
- ``nav``: the table of contents and landmarks.

Import reads a book with these, and the read-along builder reads the same book with the same functions, so an
anchor made at import resolves to the same element when the book is built. A book that cannot be read raises
``BookError``, whose message says why, for a person (the importer knows it as ``BookError``).
"""

from __future__ import annotations


class BookError(Exception):
    """A book or container that cannot be read; the message says why, for a person."""


__all__ = ["BookError"]
