"""``build_readalong(dest, book)``: the EPUB 3 read-along with Media Overlays.

From an EPUB (``book.source_epub``): the original package, every file kept,
plus the audio, one SMIL per narrated content document, the highlight style
linked from those documents, and ids added where rows point at elements that
had none (``mm-`` and the element's CFI steps, so the same book always gets
the same ids). An EPUB 2 source is raised to EPUB 3 (package version, a
navigation document made from the NCX, ``dcterms:modified``, ``opf:``
attributes turned into EPUB 3 metadata, HTML5 doctypes), since overlays are
EPUB 3 only. Rows without a ``source`` (added by hand) share the element of
the row before them (or after, at a chapter's start), so their audio still
plays. Without a source EPUB the book is made from the manifest (``fresh``).

The file is written to a temporary name beside ``dest`` and renamed.
Problems that do not stop the build (a row's text not found where its anchor
points) are appended to ``book.warnings``.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

from lxml import etree

from ...core.files import atomic_path
from ...epub import BookError
from ...epub.nav import read_toc
from ...epub.package import DC_NS, OPF_NS, Package, open_package
from ...epub.xhtml import XHTML_NS, element_steps, local, parse_xhtml, resolve_fragment, split_anchor
from ...media import probe, run_ffmpeg
from . import fresh
from .audio import encode_mp3
from .model import ReadalongBook, ReadalongError, ReadalongRow
from .package import CONTAINER, CSS, NS, add_item, add_overlays, modified_stamp, set_modified, write_epub
from .place import place_rows
from .smil import overlay_duration_ms, smil_document

_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*(\[[^\]]*\])?\s*>", re.I)
TOLERANCE_S = 0.25  # how far a row may run past its chapter's audio (encoder padding)


def build_readalong(dest: Path, book: ReadalongBook, work: Path | None = None) -> None:
    """Write the read-along EPUB for ``book`` at ``dest`` (see the module docstring); ``work``: a scratch folder."""
    book.check()
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="readalong-", dir=work) as scratch:
        files = _from_epub(book, Path(scratch)) if book.source_epub else _fresh(book, Path(scratch))
        with atomic_path(dest) as tmp:
            write_epub(tmp, files)


# -- audio ---------------------------------------------------------------------------------------------------
def _audio(book: ReadalongBook, work: Path) -> list[bytes | None]:
    """MP3 bytes per chapter (None for a chapter without rows), after checking the rows fit the audio."""
    out: list[bytes | None] = []
    for n, chapter in enumerate(book.chapters, 1):
        if not chapter.rows:
            out.append(None)
            continue
        length = probe(chapter.audio).duration_s
        last = chapter.rows[-1].end_s
        if last > length + TOLERANCE_S:
            raise ReadalongError(
                f"chapter '{chapter.title}': rows run to {last:.3f} s but its audio lasts {length:.3f} s"
            )
        target = work / f"ch{n:02d}.mp3"
        encode_mp3(chapter.audio, target, book.audio_bitrate)
        out.append(target.read_bytes())
    return out


def _rel(from_file: str, to_file: str) -> str:
    return quote(posixpath.relpath(to_file, posixpath.dirname(from_file) or "."))


# -- from an EPUB --------------------------------------------------------------------------------------------
def _from_epub(book: ReadalongBook, work: Path) -> dict[str, bytes]:
    assert book.source_epub is not None  # build_readalong comes here only with one
    try:
        package = open_package(Path(book.source_epub))
    except BookError as exc:
        raise ReadalongError(str(exc)) from None
    files = {name: package.zip.read(name) for name in package.zip.namelist() if not name.endswith("/")}
    for name in ("META-INF/signatures.xml", "META-INF/encryption.xml", "mimetype"):
        files.pop(name, None)  # signatures no longer match; encryption.xml only ever held font obfuscation
    upgrade = package.version.split(".")[0] != "3"
    opf_dir = package.opf_dir
    by_path = package.by_path()
    trees: dict[str, etree._ElementTree] = {}

    def tree_for(path: str) -> etree._ElementTree | None:
        if path not in trees:
            item = by_path.get(path)
            if item is None or item.media_type not in ("application/xhtml+xml", "text/html"):
                return None
            trees[path] = parse_xhtml(files[path])
        return trees[path]

    # Resolve every row on the untouched documents first: adding spans changes element paths.
    placed: list[list[tuple[ReadalongRow, str, etree._Element] | None]] = []
    for chapter in book.chapters:
        resolved: list[tuple[ReadalongRow, str, etree._Element] | None] = []
        for row in chapter.rows:
            hit = None
            if row.source:
                href, fragment = split_anchor(row.source)
                path = posixpath.normpath(posixpath.join(opf_dir, href)) if opf_dir else posixpath.normpath(href)
                tree = tree_for(path)
                element = resolve_fragment(tree, fragment) if tree is not None and fragment else None
                if element is None and tree is not None and not fragment:
                    element = next((e for e in tree.getroot().iter() if local(e) == "body"), None)
                if element is not None:
                    hit = (row, path, element)
                else:
                    book.warnings.append(f"row {row.id}: its source {row.source} is not in the book")
            resolved.append(hit)
        placed.append(_fill_unsourced(chapter.rows, resolved, book.warnings, chapter.title))
    for chapter_rows in placed:
        for hit in chapter_rows:
            if hit is not None and not hit[2].get("id"):
                hit[2].set("id", "mm-" + "-".join(map(str, element_steps(hit[2]))))

    audio = _audio(book, work)
    opf = package.opf
    root = opf.getroot()
    manifest = root.find("opf:manifest", NS)
    taken = {i.get("id") for i in manifest.findall("opf:item", NS)}
    audio_dir = posixpath.join(opf_dir, "audio") if opf_dir else "audio"
    audio_paths: dict[int, str] = {}
    for n, data in enumerate(audio, 1):
        if data is None or not any(placed[n - 1]):
            continue
        path = _free_path(files, posixpath.join(audio_dir, f"ch{n:02d}.mp3"))
        files[path] = data
        audio_paths[n] = path
        add_item(manifest, taken, f"mm-audio-{n:02d}", package.rel(path), "audio/mpeg")
    css_path = _free_path(files, posixpath.join(opf_dir, "css", "readalong.css") if opf_dir else "css/readalong.css")
    files[css_path] = CSS
    add_item(manifest, taken, "mm-readalong-css", package.rel(css_path), "text/css")

    # Rows grouped by document, in reading order.
    per_doc: dict[str, list[tuple[ReadalongRow, etree._Element, str]]] = {}
    for n, chapter_rows in enumerate(placed, 1):
        for hit in chapter_rows:
            if hit is not None and n in audio_paths:
                per_doc.setdefault(hit[1], []).append((hit[0], hit[2], audio_paths[n]))
    spine_order = {item.path: i for i, (item, _) in enumerate(package.spine)}
    overlays: list[tuple[str, str, int]] = []
    for path in sorted(per_doc, key=lambda p: spine_order.get(p, 1 << 30)):
        tree = trees[path]
        smil_path = _free_path(files, posixpath.splitext(path)[0] + ".smil")
        entries = per_doc[path]
        taken_ids = {e.get("id") for e in tree.getroot().iter() if isinstance(e.tag, str) and e.get("id")}
        groups = place_rows(
            [(r, el) for r, el, _ in entries],
            {r.id: _rel(smil_path, a) for r, _, a in entries},
            _rel(smil_path, path),
            taken_ids,
            book.warnings,
        )
        files[smil_path] = smil_document(groups)
        smil_id = add_item(
            manifest, taken, f"mm-mo-{len(overlays) + 1:03d}", package.rel(smil_path), "application/smil+xml"
        )
        _link_css(tree, _rel(path, css_path))
        overlays.append((by_path[path].id, smil_id, overlay_duration_ms(groups)))
    if not overlays:
        raise ReadalongError("no row of the manifest points into the source EPUB: nothing to synchronise")
    for path, tree in trees.items():
        if path in per_doc:
            files[path] = _serialise(tree, html5=upgrade)
    if upgrade:
        _upgrade_to_epub3(package, files, manifest, taken)
    add_overlays(opf, overlays, book.narrator)
    set_modified(root.find("opf:metadata", NS), modified_stamp(book.modified))
    files[package.opf_path] = etree.tostring(opf, xml_declaration=True, encoding="utf-8")
    return files


def _fill_unsourced(rows, resolved, warnings: list[str], title: str):
    """Rows without a place share the element of the row before them (or the first one after)."""
    out = list(resolved)
    last = None
    for i, hit in enumerate(out):
        if hit is not None:
            last = hit
        elif last is not None:
            out[i] = (rows[i], last[1], last[2])
    first = next((h for h in out if h is not None), None)
    if first is None:
        if rows:
            warnings.append(f"chapter '{title}': no row points into the book; its audio is left out")
        return out
    for i, hit in enumerate(out):
        if hit is not None:
            break
        out[i] = (rows[i], first[1], first[2])
    return out


def _free_path(files: dict[str, bytes], wanted: str) -> str:
    stem, ext = posixpath.splitext(wanted)
    candidate, n = wanted, 1
    while candidate in files:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    return candidate


def _link_css(tree: etree._ElementTree, href: str) -> None:
    head = next((e for e in tree.getroot() if isinstance(e.tag, str) and local(e) == "head"), None)
    if head is None:
        head = etree.Element(f"{{{XHTML_NS}}}head")
        tree.getroot().insert(0, head)
    link = etree.SubElement(head, f"{{{XHTML_NS}}}link", rel="stylesheet", href=href)
    link.set("type", "text/css")


def _serialise(tree: etree._ElementTree, html5: bool) -> bytes:
    if html5:
        return etree.tostring(tree, xml_declaration=True, encoding="utf-8", doctype="<!DOCTYPE html>")
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def _upgrade_to_epub3(package: Package, files: dict[str, bytes], manifest: etree._Element, taken: set[str]) -> None:
    """EPUB 2 -> 3: what EPUB 3 requires of the package and its documents."""
    root = package.opf.getroot()
    root.set("version", "3.0")
    metadata = root.find("opf:metadata", NS)
    opf_attr = f"{{{OPF_NS}}}"
    for n, el in enumerate(list(metadata)):
        if not isinstance(el.tag, str):
            continue
        role, file_as = el.get(f"{opf_attr}role"), el.get(f"{opf_attr}file-as")
        for attr in [a for a in el.attrib if a.startswith(opf_attr)]:
            del el.attrib[attr]
        if (role or file_as) and el.tag in (f"{{{DC_NS}}}creator", f"{{{DC_NS}}}contributor"):
            if not el.get("id"):
                el.set("id", f"mm-creator-{n}")
            for prop, value in (("role", role), ("file-as", file_as)):
                if value:
                    meta = etree.SubElement(metadata, f"{{{OPF_NS}}}meta", property=prop, refines=f"#{el.get('id')}")
                    if prop == "role":
                        meta.set("scheme", "marc:relators")
                    meta.text = value
    for item, _ in package.spine:  # HTML5 doctype in every content document
        if item.media_type == "application/xhtml+xml" and item.path in files:
            data = files[item.path]
            if _DOCTYPE.search(data[:2048]):
                files[item.path] = _DOCTYPE.sub(b"<!DOCTYPE html>", data, count=1)
    if package.nav is None:
        entries, _ = read_toc(package)
        nav_path = _free_path(files, posixpath.join(package.opf_dir, "nav.xhtml") if package.opf_dir else "nav.xhtml")
        files[nav_path] = _nav_from_toc(entries, nav_path, package.title or "Contents")
        add_item(manifest, taken, "mm-nav", package.rel(nav_path), "application/xhtml+xml", "nav")


def _nav_from_toc(entries, nav_path: str, title: str) -> bytes:
    tree, body = fresh._html("Contents", "en")
    head = tree.getroot().find(f"{{{XHTML_NS}}}head")
    head.remove(head.find(f"{{{XHTML_NS}}}link"))
    nav = etree.SubElement(body, f"{{{XHTML_NS}}}nav", id="toc")
    nav.set("{http://www.idpf.org/2007/ops}type", "toc")
    etree.SubElement(nav, f"{{{XHTML_NS}}}h1").text = title
    stack = [(0, etree.SubElement(nav, f"{{{XHTML_NS}}}ol"))]
    last_li = None
    for entry in entries:
        if entry.path is None:
            continue
        while entry.depth > stack[-1][0] + 1 and last_li is not None:
            stack.append((stack[-1][0] + 1, etree.SubElement(last_li, f"{{{XHTML_NS}}}ol")))
        while entry.depth <= stack[-1][0] and len(stack) > 1:
            stack.pop()
        li = etree.SubElement(stack[-1][1], f"{{{XHTML_NS}}}li")
        href = _rel(nav_path, entry.path) + (f"#{entry.fragment}" if entry.fragment else "")
        etree.SubElement(li, f"{{{XHTML_NS}}}a", href=href).text = entry.title or "Untitled"
        last_li = li
    return fresh.serialise(tree)


# -- from the manifest ---------------------------------------------------------------------------------------
def _fresh(book: ReadalongBook, work: Path) -> dict[str, bytes]:
    language = book.language or "und"
    audio = _audio(book, work)
    opf = fresh.package_document(book, language)
    root = opf.getroot()
    metadata, manifest, spine = (root.find(f"opf:{n}", NS) for n in ("metadata", "manifest", "spine"))
    taken: set[str] = set()
    files: dict[str, bytes] = {"META-INF/container.xml": CONTAINER, "EPUB/css/readalong.css": CSS}
    add_item(manifest, taken, "css", "css/readalong.css", "text/css")
    if book.cover is not None:
        ext = Path(book.cover).suffix.lower()
        if ext not in fresh.COVER_TYPES:  # another format: converted to PNG, a core media type
            png = work / "cover.png"
            run_ffmpeg("-i", book.cover, "-frames:v", "1", png)
            data, ext = png.read_bytes(), ".png"
        else:
            data = Path(book.cover).read_bytes()
        files[f"EPUB/images/cover{ext}"] = data
        add_item(manifest, taken, "cover-image", f"images/cover{ext}", fresh.COVER_TYPES[ext], "cover-image")
        files["EPUB/text/cover.xhtml"] = fresh.cover_doc(f"../images/cover{ext}", book.title, language)
        add_item(manifest, taken, "cover", "text/cover.xhtml", "application/xhtml+xml")
        etree.SubElement(spine, f"{{{OPF_NS}}}itemref", idref="cover")
    docs = [fresh.chapter_doc(n, chapter, language) for n, chapter in enumerate(book.chapters, 1)]
    files["EPUB/nav.xhtml"] = fresh.nav_doc(book, docs, language)
    add_item(manifest, taken, "nav", "nav.xhtml", "application/xhtml+xml", "nav")
    overlays = []
    for n, (chapter, doc, mp3) in enumerate(zip(book.chapters, docs, audio), 1):
        add_item(manifest, taken, doc.item_id, doc.href, "application/xhtml+xml")
        etree.SubElement(spine, f"{{{OPF_NS}}}itemref", idref=doc.item_id)
        if mp3 is None:
            continue
        audio_path = f"EPUB/audio/ch{n:02d}.mp3"
        files[audio_path] = mp3
        add_item(manifest, taken, f"audio-{n:02d}", f"audio/ch{n:02d}.mp3", "audio/mpeg")
        smil_path = f"EPUB/text/ch{n:02d}.smil"
        taken_ids = {e.get("id") for e in doc.tree.getroot().iter() if isinstance(e.tag, str) and e.get("id")}
        groups = place_rows(
            [(r, doc.elements[r.id]) for r in chapter.rows],
            {r.id: _rel(smil_path, audio_path) for r in chapter.rows},
            _rel(smil_path, doc.path),
            taken_ids,
            book.warnings,
        )
        files[smil_path] = smil_document(groups)
        smil_id = add_item(manifest, taken, f"mo-{n:02d}", f"text/ch{n:02d}.smil", "application/smil+xml")
        overlays.append((doc.item_id, smil_id, overlay_duration_ms(groups)))
    for doc in docs:
        files[doc.path] = fresh.serialise(doc.tree)
    add_overlays(opf, overlays, book.narrator)
    set_modified(metadata, modified_stamp(book.modified))
    files["EPUB/package.opf"] = etree.tostring(opf, xml_declaration=True, encoding="utf-8")
    return files


__all__ = ["build_readalong"]
