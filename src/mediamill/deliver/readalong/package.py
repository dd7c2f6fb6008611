"""The EPUB 3 package around the overlays: OPF additions, the highlight style, the ZIP.

``add_overlays`` edits a package document in place: manifest items for the
SMIL files, the audio and the style sheet; ``media-overlay`` on each narrated
content document's item; ``media:duration`` per overlay and in total (the
total is the sum of the overlays, as EPUB 3.3 asks), ``media:active-class``
(and ``media:narrator`` when known); ``dcterms:modified`` set to the build
time. ``write_epub`` writes the container: ``mimetype`` first and stored,
everything else deflated.
"""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from ...epub.package import DC_NS, OPF_NS
from .clock import clock

ACTIVE_CLASS = "-epub-media-overlay-active"
CSS = (
    f".{ACTIVE_CLASS} {{ background-color: #fff1a8; color: #000000; border-radius: 0.15em; }}\n.mm-row {{ }}\n"
).encode()
MEDIA_NS = "http://www.idpf.org/epub/vocab/overlays/#"
NS = {"opf": OPF_NS, "dc": DC_NS}


def modified_stamp(when: datetime | None) -> str:
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def unique_id(wanted: str, taken: set[str]) -> str:
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}-{n}"
    taken.add(candidate)
    return candidate


def add_item(
    manifest: etree._Element, taken: set[str], wanted_id: str, href: str, media_type: str, properties: str | None = None
) -> str:
    ident = unique_id(wanted_id, taken)
    item = etree.SubElement(manifest, f"{{{OPF_NS}}}item", id=ident, href=href)
    item.set("media-type", media_type)
    if properties:
        item.set("properties", properties)
    return ident


def _meta(metadata: etree._Element, prop: str, value: str, refines: str | None = None) -> None:
    meta = etree.SubElement(metadata, f"{{{OPF_NS}}}meta", property=prop)
    if refines:
        meta.set("refines", refines)
    meta.text = value


def set_modified(metadata: etree._Element, stamp: str) -> None:
    for old in metadata.findall("opf:meta[@property='dcterms:modified']", NS):
        metadata.remove(old)
    _meta(metadata, "dcterms:modified", stamp)


def add_overlays(opf: etree._ElementTree, overlays: list[tuple[str, str, int]], narrator: str | None) -> None:
    """``overlays``: (content document item id, SMIL item id, duration in ms) for each narrated document."""
    root = opf.getroot()
    metadata = root.find("opf:metadata", NS)
    manifest = root.find("opf:manifest", NS)
    for old in metadata.findall("opf:meta", NS):
        if (old.get("property") or "").startswith("media:"):
            metadata.remove(old)
    for item in manifest.findall("opf:item", NS):
        item.attrib.pop("media-overlay", None)
    items = {i.get("id"): i for i in manifest.findall("opf:item", NS)}
    total = 0
    for doc_id, smil_id, duration in overlays:
        items[doc_id].set("media-overlay", smil_id)
        _meta(metadata, "media:duration", clock(duration), f"#{smil_id}")
        total += duration
    _meta(metadata, "media:duration", clock(total))
    _meta(metadata, "media:active-class", ACTIVE_CLASS)
    if narrator:
        _meta(metadata, "media:narrator", narrator)


def write_epub(dest: Path, files: dict[str, bytes]) -> None:
    """A ZIP container at ``dest`` (a temp path the caller renames)."""
    with zipfile.ZipFile(dest, "w") as z:
        info = zipfile.ZipInfo("mimetype", date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info, b"application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            if name == "mimetype":
                continue
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)


CONTAINER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<container version="1.0" '
    b'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
    b'<rootfile full-path="EPUB/package.opf" media-type="application/oebps-package+xml"/>'
    b"</rootfiles></container>\n"
)
