"""Reading an EPUB container: the package document, its manifest, spine and metadata.

``open_package`` checks the ZIP (``archive.check_archive``: no entry nor the
whole may inflate past its cap, so every later read is bounded), finds the
package document through ``META-INF/container.xml`` and refuses encrypted books: an
``encryption.xml`` whose entries cover anything but fonts (font obfuscation,
IDPF or Adobe, is not DRM) means the text cannot be read. Paths here are ZIP
entry names (percent-decoded, normalised); ``Package.rel`` turns one into the
href relative to the package document's folder, which is what anchors use.
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag

from lxml import etree

from . import BookError
from .archive import check_archive, read_member

OPF_NS = "http://www.idpf.org/2007/opf"
DC_NS = "http://purl.org/dc/elements/1.1/"
CONTAINER_NS = "urn:oasis:names:tc:opendocument:xmlns:container"
ENC_NS = "http://www.w3.org/2001/04/xmlenc#"
NS = {"opf": OPF_NS, "dc": DC_NS, "c": CONTAINER_NS, "enc": ENC_NS}
FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
XHTML_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True, huge_tree=True)


@dataclass(frozen=True)
class Item:
    id: str
    path: str  # ZIP entry name
    media_type: str
    properties: frozenset[str] = frozenset()
    fallback: str | None = None


@dataclass
class Package:
    zip: zipfile.ZipFile
    opf_path: str
    opf: etree._ElementTree
    version: str
    items: dict[str, Item]  # by id
    spine: list[tuple[Item, bool]]  # (item, linear)
    ncx: Item | None
    nav: Item | None
    title: str | None = None
    author: str | None = None
    language: str | None = None
    identifier: str | None = None
    guide: list[tuple[str, str, str | None]] = field(default_factory=list)  # (type, path, fragment)
    label: str = "the EPUB"  # the book's file name, for messages

    @property
    def opf_dir(self) -> str:
        return posixpath.dirname(self.opf_path)

    def rel(self, path: str) -> str:
        """A ZIP entry name as an href relative to the package document's folder."""
        return posixpath.relpath(path, self.opf_dir or ".") if self.opf_dir else path

    def resolve(self, base_path: str, href: str) -> tuple[str, str | None]:
        """An href found in ``base_path`` as (ZIP entry name, fragment or None)."""
        url, fragment = urldefrag(href)
        if not url:
            return base_path, fragment or None
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(base_path), unquote(url)))
        return joined, fragment or None

    def read(self, path: str) -> bytes:
        try:
            return read_member(self.zip, path, self.label)
        except KeyError:
            raise BookError(f"the book names {path} but the file is not in the EPUB") from None

    def by_path(self) -> dict[str, Item]:
        return {item.path: item for item in self.items.values()}


def parse_xml(data: bytes) -> etree._ElementTree:
    root = etree.fromstring(data, _SAFE_PARSER)
    if root is None:
        raise ValueError("not XML")
    return root.getroottree()


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    value = " ".join("".join(el.itertext()).split())
    return value or None


def open_package(path: Path) -> Package:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BookError(f"{path.name} is not a readable EPUB (not a ZIP archive: {exc})") from None
    check_archive(archive, path.name)
    names = set(archive.namelist())
    if "META-INF/container.xml" not in names:
        raise BookError(f"{path.name} is not an EPUB: it has no META-INF/container.xml")
    try:
        container = parse_xml(read_member(archive, "META-INF/container.xml", path.name))
    except (ValueError, etree.XMLSyntaxError) as exc:
        raise BookError(f"{path.name}: META-INF/container.xml is unreadable ({exc})") from None
    rootfiles = container.getroot().xpath(
        "//c:rootfile[@media-type='application/oebps-package+xml']/@full-path | //c:rootfile/@full-path", namespaces=NS
    )
    if not rootfiles or rootfiles[0] not in names:
        raise BookError(f"{path.name}: the package document named in container.xml is missing")
    opf_path = rootfiles[0]
    try:
        opf = parse_xml(read_member(archive, opf_path, path.name))
    except (ValueError, etree.XMLSyntaxError) as exc:
        raise BookError(f"{path.name}: the package document {opf_path} is not readable XML ({exc})") from None
    package = _read_opf(archive, opf_path, opf)
    package.label = path.name
    _refuse_encrypted(path, archive, names, package)
    return package


def _read_opf(archive: zipfile.ZipFile, opf_path: str, opf: etree._ElementTree) -> Package:
    root = opf.getroot()
    version = root.get("version", "2.0")
    opf_dir = posixpath.dirname(opf_path)
    items: dict[str, Item] = {}
    for el in root.xpath("opf:manifest/opf:item", namespaces=NS):
        href = el.get("href")
        if not href or not el.get("id"):
            continue
        url = urldefrag(href)[0]
        entry = (
            posixpath.normpath(posixpath.join(opf_dir, unquote(url))) if opf_dir else posixpath.normpath(unquote(url))
        )
        items[el.get("id")] = Item(
            el.get("id"),
            entry,
            (el.get("media-type") or "").strip().lower(),
            frozenset((el.get("properties") or "").split()),
            el.get("fallback"),
        )
    spine_el = root.find("opf:spine", NS)
    spine: list[tuple[Item, bool]] = []
    ncx = None
    if spine_el is not None:
        ncx = items.get(spine_el.get("toc") or "")
        for ref in spine_el.findall("opf:itemref", NS):
            item = items.get(ref.get("idref") or "")
            if item is not None:
                spine.append((item, (ref.get("linear") or "yes").strip().lower() != "no"))
    if ncx is None:
        ncx = next((i for i in items.values() if i.media_type == "application/x-dtbncx+xml"), None)
    nav = next((i for i in items.values() if "nav" in i.properties), None)
    metadata = root.find("opf:metadata", NS)
    package = Package(archive, opf_path, opf, version, items, spine, ncx, nav)
    if metadata is not None:
        titles = metadata.findall("dc:title", NS)
        main = [t for t in titles if _refined(metadata, t, "title-type") == "main"]
        package.title = _text((main or titles or [None])[0])
        creators = metadata.findall("dc:creator", NS)
        authors = [
            c for c in creators if (c.get(f"{{{OPF_NS}}}role") or _refined(metadata, c, "role") or "aut") == "aut"
        ]
        package.author = _text((authors or creators or [None])[0])
        package.language = _text(metadata.find("dc:language", NS))
        uid = root.get("unique-identifier")
        ident = metadata.xpath("dc:identifier[@id=$u]", namespaces=NS, u=uid) if uid else []
        package.identifier = _text((ident or metadata.findall("dc:identifier", NS) or [None])[0])
    for ref in root.xpath("opf:guide/opf:reference", namespaces=NS):
        if ref.get("href"):
            target, fragment = package.resolve(opf_path, ref.get("href"))
            package.guide.append(((ref.get("type") or "").lower(), target, fragment))
    return package


def _refined(metadata: etree._Element, el: etree._Element, prop: str) -> str | None:
    ident = el.get("id")
    if not ident:
        return None
    for meta in metadata.findall("opf:meta", NS):
        if meta.get("refines") == f"#{ident}" and meta.get("property") == prop:
            return (meta.text or "").strip()
    return None


def _refuse_encrypted(path: Path, archive: zipfile.ZipFile, names: set[str], package: Package) -> None:
    if "META-INF/encryption.xml" not in names:
        return
    try:
        enc = parse_xml(read_member(archive, "META-INF/encryption.xml", path.name))
    except (ValueError, etree.XMLSyntaxError):
        raise BookError(f"{path.name}: META-INF/encryption.xml is unreadable; the book may be DRM-protected") from None
    documents = {i.path for i in package.items.values() if i.media_type in XHTML_TYPES}
    locked = []
    for data in enc.getroot().iter(f"{{{ENC_NS}}}EncryptedData"):
        method = data.find("enc:EncryptionMethod", NS)
        algorithm = method.get("Algorithm") if method is not None else None
        ref = data.find("enc:CipherData/enc:CipherReference", NS)
        uri = unquote(ref.get("URI")) if ref is not None and ref.get("URI") else None
        if uri is None:
            continue
        if algorithm in FONT_OBFUSCATION and uri not in documents:
            continue  # obfuscated fonts: the text is readable
        locked.append(uri)
    content = {item.path for item, _ in package.spine}
    if locked:
        which = sorted(set(locked) & content) or sorted(locked)
        raise BookError(
            f"{path.name} is encrypted (DRM): {len(locked)} file(s) cannot be read, e.g. {which[0]}. "
            "Import a DRM-free copy of the book."
        )
