"""Test manuscripts, built with the real libraries (zipfile + lxml-checked XHTML, python-docx, fpdf2, Pillow).

Each builder returns the file it wrote and the body paragraphs a correct
import must carry into the manifest, chapter by chapter.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from mediamill.ingest.clean import words as words_of

from .epub_helpers import chapters_of

WORDS = (
    "river lantern morning quiet harbour window letter garden stone bridge evening silver winter "
    "market candle orchard meadow thunder shadow whisper crowd kettle ladder chapel foreman "
    "copper distant gentle narrow heavy bright patient sudden careful golden"
).split()


def sentence(rng: random.Random, n: int | None = None) -> str:
    words = [rng.choice(WORDS) for _ in range(n or rng.randint(6, 14))]
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"])


def paragraph(rng: random.Random, sentences: int | None = None) -> str:
    return " ".join(sentence(rng) for _ in range(sentences or rng.randint(2, 5)))


def png_bytes(size=(60, 90), color=(180, 40, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Book:
    path: Path
    chapters: list[tuple[str, list[str]]]  # expected (title, body paragraphs)
    skipped_titles: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def _xhtml(title: str, body: str, epub3: bool = True, body_attrs: str = "") -> str:
    if epub3:
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
            'lang="en" xml:lang="en">'
        )
    else:
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">'
        )
    doc = f"{head}<head><title>{escape(title)}</title></head><body{body_attrs}>{body}</body></html>"
    etree.fromstring(doc.replace("&nbsp;", "&#160;").encode())  # every fixture document is well-formed
    return doc


def _zip(path: Path, files: dict[str, str | bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)


CONTAINER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<container version="1.0" '
    'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
    '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    "</rootfiles></container>"
)


def epub3_book(path: Path, seed: int = 1, edit=None) -> Book:
    """EPUB 3: cover, title page, copyright, a contents page, two parts; chapters 2 and 3 share one
    XHTML file; part two's title and chapter 4 share another; footnotes (aside) and endnotes;
    a table, an image with alt text, page-break markers, ligatures and odd spaces.

    ``edit(chapters)`` may change the paragraph lists before the book is written (re-import tests).
    """
    rng = random.Random(seed)
    paras = {n: [paragraph(rng) for _ in range(rng.randint(4, 7))] for n in (1, 2, 3, 4)}
    if edit:
        edit(paras)
    titles = {1: "Chapter 1: Arrival", 2: "Chapter 2: The Market", 3: "Chapter 3: Lanterns", 4: "Chapter 4: Winter"}

    def ps(n: int, prefix: str) -> str:
        out = []
        for i, text in enumerate(paras[n]):
            ident = f' id="{prefix}p{i + 1}"' if i % 2 == 0 else ""  # half the paragraphs have no id
            out.append(f"<p{ident}>{escape(text)}</p>")
        return "".join(out)

    # Chapter 1: a footnote, a page break, an image with alt text, ligature + NBSP + soft hyphen.
    ch1_extra = (
        '<p id="c1x">The o\ufb03ce was quiet<a epub:type="noteref" href="#fn1">1</a> and the&#160;clock '
        'ticked in its care\u00adful way.<span epub:type="pagebreak" id="pg12" title="12">12</span></p>'
        '<figure><img src="../images/map.png" alt="A map of the harbour"/></figure>'
        '<aside epub:type="footnote" id="fn1"><p>The office had been closed since spring.</p></aside>'
    )
    ch1 = _xhtml(
        "Chapter 1", f'<section epub:type="chapter" id="ch1"><h2>{titles[1]}</h2>{ps(1, "a")}{ch1_extra}</section>'
    )
    ch23 = _xhtml(
        "Chapters 2 and 3",
        f'<section epub:type="chapter" id="ch2"><h2>{titles[2]}</h2>{ps(2, "b")}<hr/>'
        f"<p>{escape(paras[2][0][:40])} again, after the break.</p></section>"
        f'<section epub:type="chapter" id="ch3"><h2>{titles[3]}</h2>{ps(3, "c")}</section>',
    )
    ch4_extra = (
        '<p id="c4x">The list was long<sup><a href="notes.xhtml#n1" id="r1">2</a></sup> and careful.</p>'
        "<table><tr><th>Item</th><th>Count</th></tr><tr><td>Candles</td><td>12</td></tr></table>"
    )
    part2 = _xhtml(
        "Part Two",
        '<section epub:type="part" id="part2"><h1>Part Two</h1></section>'
        f'<section epub:type="chapter" id="ch4"><h2>{titles[4]}</h2>{ps(4, "d")}{ch4_extra}'
        "</section>",
    )
    part1 = _xhtml("Part One", '<section epub:type="part"><h1>Part One</h1></section>')
    cover = _xhtml("Cover", '<section epub:type="cover"><img src="images/cover.png" alt="Cover"/></section>')
    titlepage = _xhtml(
        "Title page", '<section epub:type="titlepage"><h1>The Lantern Harbour</h1><p>Mara Ellison</p></section>'
    )
    copyright_ = _xhtml(
        "Copyright",
        '<section epub:type="copyright-page"><p>Copyright \u00a9 2024 Mara Ellison.'
        " All rights reserved.</p><p>ISBN 978-0-00-000000-0</p></section>",
    )
    ack = _xhtml(
        "Acknowledgments",
        '<section epub:type="acknowledgments"><h2>Acknowledgments</h2>'
        "<p>Thanks to everyone at the harbour.</p></section>",
    )
    notes = _xhtml(
        "Notes",
        '<section epub:type="endnotes"><h2>Notes</h2><ol>'
        '<li id="n1"><p><a href="part2.xhtml#r1">2</a> Twelve candles, counted twice.</p></li>'
        "</ol></section>",
    )
    nav = _xhtml(
        "Contents",
        (
            '<nav epub:type="toc" id="toc"><h1>Contents</h1><ol>'
            '<li><a href="text/titlepage.xhtml">Title Page</a></li>'
            '<li><a href="text/copyright.xhtml">Copyright</a></li>'
            f'<li><a href="text/part1.xhtml">Part One</a><ol>'
            f'<li><a href="text/ch1.xhtml">{titles[1]}</a></li>'
            f'<li><a href="text/ch23.xhtml#ch2">{titles[2]}</a></li>'
            f'<li><a href="text/ch23.xhtml#ch3">{titles[3]}</a></li></ol></li>'
            f'<li><a href="text/part2.xhtml">Part Two</a><ol>'
            f'<li><a href="text/part2.xhtml#ch4">{titles[4]}</a></li></ol></li>'
            '<li><a href="text/acknowledgments.xhtml">Acknowledgments</a></li>'
            '<li><a href="text/notes.xhtml">Notes</a></li>'
            "</ol></nav>"
            '<nav epub:type="landmarks" hidden=""><ol>'
            '<li><a epub:type="cover" href="cover.xhtml">Cover</a></li>'
            '<li><a epub:type="bodymatter" href="text/part1.xhtml">Start</a></li>'
            "</ol></nav>"
        ),
    )
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="uid">urn:uuid:7c1a4c6e-0d0b-4a3e-9d1e-2a3b4c5d6e7f</dc:identifier>'
        '<dc:title>The Lantern Harbour</dc:title><dc:creator id="au">Mara Ellison</dc:creator>'
        '<meta refines="#au" property="role" scheme="marc:relators">aut</meta>'
        '<dc:language>en</dc:language><meta property="dcterms:modified">2024-01-01T00:00:00Z</meta>'
        "</metadata><manifest>"
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        '<item id="cover" href="cover.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="cover-image" href="images/cover.png" media-type="image/png" properties="cover-image"/>'
        '<item id="map" href="images/map.png" media-type="image/png"/>'
        '<item id="titlepage" href="text/titlepage.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="copyright" href="text/copyright.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="part1" href="text/part1.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="ch1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="ch23" href="text/ch23.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="part2" href="text/part2.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="ack" href="text/acknowledgments.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="notes" href="text/notes.xhtml" media-type="application/xhtml+xml"/>'
        "</manifest><spine>"
        '<itemref idref="cover"/><itemref idref="titlepage"/><itemref idref="copyright"/><itemref idref="nav"/>'
        '<itemref idref="part1"/><itemref idref="ch1"/><itemref idref="ch23"/><itemref idref="part2"/>'
        '<itemref idref="ack"/><itemref idref="notes"/>'
        "</spine></package>"
    )
    _zip(
        path,
        {
            "META-INF/container.xml": CONTAINER,
            "OEBPS/content.opf": opf,
            "OEBPS/nav.xhtml": nav,
            "OEBPS/cover.xhtml": cover,
            "OEBPS/images/cover.png": png_bytes(),
            "OEBPS/images/map.png": png_bytes((40, 40), (20, 90, 160)),
            "OEBPS/text/titlepage.xhtml": titlepage,
            "OEBPS/text/copyright.xhtml": copyright_,
            "OEBPS/text/part1.xhtml": part1,
            "OEBPS/text/ch1.xhtml": ch1,
            "OEBPS/text/ch23.xhtml": ch23,
            "OEBPS/text/part2.xhtml": part2,
            "OEBPS/text/acknowledgments.xhtml": ack,
            "OEBPS/text/notes.xhtml": notes,
        },
    )
    body = {n: list(paras[n]) for n in paras}
    body[1].append("The office was quiet and the clock ticked in its careful way.")
    body[2].append(f"{paras[2][0][:40]} again, after the break.")
    body[4].append("The list was long and careful.")
    return Book(
        path,
        [
            ("Part One: " + titles[1], body[1]),
            (titles[2], body[2]),
            (titles[3], body[3]),
            ("Part Two: " + titles[4], body[4]),
        ],
        ["Cover", "Title Page", "Copyright", "Contents", "Acknowledgments", "Notes"],
        {"fn1": "The office had been closed since spring.", "n1": "Twelve candles, counted twice."},
    )


def epub2_book(path: Path, seed: int = 2) -> Book:
    """EPUB 2: NCX only, a guide, XHTML 1.1 documents with HTML entities, a title page without semantics."""
    rng = random.Random(seed)
    chapters = [(f"Chapter {n}", [paragraph(rng) for _ in range(rng.randint(3, 6))]) for n in ("I", "II", "III")]
    docs = {}
    for i, (title, paras) in enumerate(chapters, 1):
        body = f'<h2 class="chapter">{title}</h2>' + "".join(
            f"<p>{escape(p).replace(' ', '&nbsp;', 1)}</p>" for p in paras
        )
        docs[f"OEBPS/chapter{i}.html"] = _xhtml(title, body, epub3=False)
    docs["OEBPS/title.html"] = _xhtml(
        "Title", '<div class="title"><h1>A Winter Ledger</h1><p>J. Carver</p></div>', epub3=False
    )
    docs["OEBPS/about.html"] = _xhtml(
        "About", "<h2>About the Author</h2><p>J. Carver lives by the sea.</p>", epub3=False
    )
    ncx_points = "".join(
        f'<navPoint id="np{i}" playOrder="{i + 1}"><navLabel><text>{t}</text></navLabel>'
        f'<content src="chapter{i}.html"/></navPoint>'
        for i, (t, _) in enumerate(chapters, 1)
    )
    ncx = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
        '<head><meta name="dtb:uid" content="urn:uuid:11111111-2222-3333-4444-555555555555"/>'
        '<meta name="dtb:depth" content="1"/><meta name="dtb:totalPageCount" content="0"/>'
        '<meta name="dtb:maxPageNumber" content="0"/></head>'
        "<docTitle><text>A Winter Ledger</text></docTitle>"
        f'<navMap><navPoint id="np0" playOrder="1"><navLabel><text>Title Page</text></navLabel>'
        f'<content src="title.html"/></navPoint>{ncx_points}'
        f'<navPoint id="np9" playOrder="5"><navLabel><text>About the Author</text></navLabel>'
        f'<content src="about.html"/></navPoint></navMap></ncx>'
    )
    items = "".join(f'<item id="c{i}" href="chapter{i}.html" media-type="application/xhtml+xml"/>' for i in range(1, 4))
    refs = "".join(f'<itemref idref="c{i}"/>' for i in range(1, 4))
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">'
        '<dc:title>A Winter Ledger</dc:title><dc:creator opf:role="aut" opf:file-as="Carver, J.">J. Carver'
        "</dc:creator><dc:language>en-GB</dc:language>"
        '<dc:identifier id="uid" opf:scheme="UUID">urn:uuid:11111111-2222-3333-4444-555555555555</dc:identifier>'
        '<meta name="cover" content="cover-img"/></metadata><manifest>'
        '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        '<item id="cover-img" href="cover.png" media-type="image/png"/>'
        '<item id="title" href="title.html" media-type="application/xhtml+xml"/>'
        f'{items}<item id="about" href="about.html" media-type="application/xhtml+xml"/></manifest>'
        f'<spine toc="ncx"><itemref idref="title"/>{refs}<itemref idref="about"/></spine>'
        '<guide><reference type="title-page" href="title.html" title="Title"/>'
        '<reference type="text" href="chapter1.html" title="Start"/></guide></package>'
    )
    _zip(
        path,
        {
            "META-INF/container.xml": CONTAINER,
            "OEBPS/content.opf": opf,
            "OEBPS/toc.ncx": ncx,
            "OEBPS/cover.png": png_bytes(),
            **docs,
        },
    )
    return Book(path, chapters, ["Title Page", "About the Author"])


def drm_epub(path: Path) -> Path:
    """An EPUB whose content documents are listed as encrypted (as Adobe ADEPT books are)."""
    epub3_book(path)
    enc = (
        '<?xml version="1.0"?>\n<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        '<enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        '<ds:KeyInfo><resource xmlns="http://ns.adobe.com/adept"/></ds:KeyInfo>'
        '<enc:CipherData><enc:CipherReference URI="OEBPS/text/ch1.xhtml"/></enc:CipherData>'
        "</enc:EncryptedData></encryption>"
    )
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("META-INF/encryption.xml", enc)
    return path


def _chapters(rng: random.Random, n: int, titles: list[str], paras=(3, 5)) -> list[tuple[str, list[str]]]:
    return [(titles[i], [paragraph(rng) for _ in range(rng.randint(*paras))]) for i in range(n)]


def docx_book(path: Path, seed: int = 3) -> Book:
    """DOCX: Title style, Heading 1 chapters, a Heading 2 inside, a footnote-like superscript, a table."""
    import docx

    rng = random.Random(seed)
    chapters = _chapters(rng, 3, ["The First Morning", "A Letter Arrives", "Homecoming"])
    d = docx.Document()
    d.core_properties.author = "Ada Brook"
    d.core_properties.language = "en-US"
    d.add_paragraph("The Orchard Year", style="Title")
    for title, paras in chapters:
        d.add_heading(title, level=1)
        for i, text in enumerate(paras):
            p = d.add_paragraph(text)
            if i == 1:
                run = p.add_run("3")
                run.font.superscript = True  # a hand-typed footnote marker
        d.add_heading("Later that day", level=2)
        extra = paragraph(rng)
        d.add_paragraph(extra)
        paras.append(extra)
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Apples", "40"
    table.cell(1, 0).text, table.cell(1, 1).text = "Pears", "12"
    d.save(str(path))
    return Book(path, chapters)


def markdown_book(path: Path, seed: int = 4) -> Book:
    import textwrap

    rng = random.Random(seed)
    chapters = _chapters(rng, 3, ["Chapter One", "Chapter Two", "Chapter Three"])
    lines = ["---", "title: Salt and Iron", "author: Tom Reyes", "lang: en", "---", "", "# Salt and Iron", ""]
    for n, (title, paras) in enumerate(chapters):
        lines += [f"## {title}", ""]
        for i, text in enumerate(paras):
            words = text.split(" ")
            if i == 0 and n == 0:
                words[2] = f"*{words[2]}*"  # emphasis must not cost words
                text_md = " ".join(words) + "[^1]"
            else:
                text_md = " ".join(words)
            lines += textwrap.wrap(text_md, 60)  # hard-wrapped source lines
            lines.append("")
        lines += ["```", "print('not narrated')", "```", ""]
    lines += ["[^1]: A note about salt.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return Book(path, chapters, notes={"1": "A note about salt."})


def html_book(path: Path, seed: int = 5) -> Book:
    rng = random.Random(seed)
    chapters = _chapters(rng, 3, ["I. The Road", "II. The Inn", "III. The Ford"])
    body = ["<h1>The Long Road</h1><p class='author'>by Iris Hale</p>"]
    for title, paras in chapters:
        body.append(f"<h2>{escape(title)}</h2>")
        for i, text in enumerate(paras):
            if i == 0:
                head, tail = text.split(" ", 1)
                body.append(
                    f"<p><span class='dropcap'>{head[0]}</span>{head[1:]} {escape(tail)}"
                    f"<sup><a href='#fn{len(body)}' id='r{len(body)}'>1</a></sup></p>"
                )
            else:
                body.append(f"<p>{escape(text)}</p>")
    body.append("<div class='footnotes'><p id='fn1'>A footnote.</p></div>")
    path.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>The Long Road</title>"
        f"<meta name='author' content='Iris Hale'></head><body>{''.join(body)}</body></html>",
        encoding="utf-8",
    )
    return Book(path, chapters)


GUTENBERG_HEADER = (
    "The Project Gutenberg EBook of {title}, by {author}\n\n"
    "This eBook is for the use of anyone anywhere at no cost and with\n"
    "almost no restrictions whatsoever.\n\n\nTitle: {title}\n\nAuthor: {author}\n\n"
    "Release Date: July 1, 2008 [EBook #55]\n\nLanguage: English\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK {upper} ***\n\n\n"
)
GUTENBERG_LICENCE = (
    "*** END OF THIS PROJECT GUTENBERG EBOOK {upper} ***\n\n"
    + "Section 1. General Terms of Use of Project Gutenberg-tm works. " * 30
)


def gutenberg_html_book(path: Path, contents: str, seed: int = 8) -> Book:
    """A Project Gutenberg HTML 4 page (capital tags, no ``lang``, ISO-8859-1, header and licence in <PRE>,
    "Language: English" in the header, a credit line after the start marker), with one of three layouts:

    - ``"table"``: H1 title, H3 "BY", H2 author, H2 "CONTENTS" over a TABLE of numerals and links to
      ``<A NAME>`` anchors inside each story's H3 ("ADVENTURE I. THE LAMP"), a centred "I." under it;
    - ``"pre"``: a <PRE> of links to empty ``<A NAME>`` anchors, each before an H1 repeating the book's
      title (first chapter only) and an H3 "1. The Cyclone"; an H3 inside chapter 2 that is a sign, not
      a chapter; an unlisted H3 "Preface" between the list and the first chapter;
    - ``"paragraphs"``: lower-case XHTML-like tags, H1 title, H2 "By <author>", a <BLOCKQUOTE> of
      paragraphs (the first is "CONTENTS") linking to anchors that close the paragraph before each H2
      chapter heading ("... DARCY" <a name>), as Gutenberg's 2000s editions do.
    """
    rng = random.Random(seed)
    title, author = "The Lamp Stories", "Edith Marlow"
    titles = ["The Lamp", "The Ferry", "The Orchard"]
    chapters: list[tuple[str, list[str]]] = []
    body: list[str] = []
    header = GUTENBERG_HEADER.format(title=title, author=author, upper=title.upper())
    body.append(f"<PRE>\n{header}\nProduced by Jane Volunteer and the Online Proofreading Team\n\n</PRE>")
    if contents == "table":
        numerals = ["I", "II", "III"]
        body.append(
            f"<CENTER><H1>THE LAMP<BR>STORIES</H1><BR><H3>BY</H3><BR><H2>{author.upper()}</H2>"
            '<HR><H2>CONTENTS</H2></CENTER><DIV CLASS="toc"><TABLE SUMMARY="Table of Contents">'
        )
        for n, t in zip(numerals, titles):
            body.append(f'<TR><TD>{n}.</TD><TD><A HREF="#{n}">{t}</A></TD></TR>')
        body.append("</TABLE></DIV><HR>")
        for n, t in zip(numerals, titles):
            heading = f"ADVENTURE {n}. {t.upper()}"
            paras = [paragraph(rng) for _ in range(3)]
            chapters.append((heading, paras))
            body.append(f'<CENTER><H3><A NAME="{n}">ADVENTURE &nbsp;{n}.&nbsp; {t.upper()}</A></H3><BR>I.</CENTER>')
            body += [f"<P>{escape(p)}" for p in paras]  # HTML 4: no closing tags
    elif contents == "pre":
        body.append(
            f'<H1 ALIGN="center">{title}</H1><H3 ALIGN="center">by</H3>'
            f'<H2 ALIGN="center">{author}</H2><H2 ALIGN="center">Contents</H2><PRE>'
        )
        for i, t in enumerate(titles, 1):
            body.append(f'    {i}.  <A HREF="#chap{i:02d}">{t}</A>')
        body.append("</PRE>")
        preface = [paragraph(rng) for _ in range(2)]
        chapters.append(("Preface", preface))
        body.append('<H3 ALIGN="center">Preface</H3>' + "".join(f"<P>{escape(p)}</P>" for p in preface))
        for i, t in enumerate(titles, 1):
            paras = [paragraph(rng) for _ in range(3)]
            chapters.append((f"{i}. {t}", paras))
            body.append(f'<A NAME="chap{i:02d}"></A>')
            if i == 1:
                body.append(f'<H1 ALIGN="center">{title.upper()}</H1>')
            body.append(f'<H3 ALIGN="center">\n{i}.  {t}\n</H3>')
            body += [f"<P>\n{escape(p)}\n</P>" for p in paras[:2]]
            if i == 2:
                body.append('<H3 ALIGN="center">"KEEP OFF THE GRASS"</H3>')
            body.append(f"<P>{escape(paras[2])}</P>")
    else:
        body.append(
            f"<h1>{title.upper()}</h1><h2>By {author}</h2><hr/><blockquote>"
            '<p class="toc"><big><b>CONTENTS</b></big></p>'
        )
        for i in range(1, 4):
            body.append(f'<p class="toc"><a href="#link2HCH{i:04d}"> Chapter {i} </a></p>')
        body.append("</blockquote><hr/>")
        for i in range(1, 4):
            paras = [paragraph(rng) for _ in range(3)] + ["\u201cEDITH MARLOW\u201d"]
            chapters.append((f"Chapter {i}", paras))
            if i == 1:
                body.append(f'<p><a name="link2HCH{i:04d}" id="link2HCH{i:04d}"><!-- H2 anchor --></a></p>')
            body.append(f"<h2>Chapter {i}</h2>")
            body += [f"<p>{escape(p)}</p>" for p in paras[:-1]]
            closing = f' <a name="link2HCH{i + 1:04d}" id="link2HCH{i + 1:04d}"><!-- H2 anchor --></a>' if i < 3 else ""
            body.append(f"<p>{paras[-1]}{closing}</p>")
    licence = GUTENBERG_LICENCE.format(upper=title.upper())
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML>\n<HEAD>\n'
        '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n'
        f"<TITLE>The Project Gutenberg E-text of {title}, by {author}</TITLE>\n</HEAD>\n<BODY>\n"
        + "\n".join(body)
        + f"\n<PRE>\n{licence}\n</PRE>\n</BODY>\n</HTML>\n"
    )
    path.write_bytes(page.encode("latin-1", "xmlcharrefreplace"))
    return Book(path, chapters, skipped_titles=["CONTENTS" if contents != "pre" else "Contents"])


def text_book(path: Path, seed: int = 6) -> Book:
    """Plain text: title + "by" line, "CHAPTER XII"-style headings with subtitles, hard-wrapped at 66
    columns, words hyphenated at line ends ("beauti-/ful" joins, "well-/known" keeps its hyphen)."""
    import textwrap

    rng = random.Random(seed)
    numerals = ["X", "XI", "XII"]
    chapters = []
    out = ["THE HARBOUR LIGHTS", "", "by Nell Avery", ""]
    for n, numeral in enumerate(numerals):
        subtitle = ["The Storm", "A Quiet Harbour", "Morning"][n]
        paras = [paragraph(rng, 4) for _ in range(rng.randint(3, 5))]
        # the vocabulary knows "beautiful" and "well-known" elsewhere in the book
        paras[0] = paras[0] + " It was a beautiful and well-known sight."
        paras[1] = "The beautiful harbour lay still under the well-known lights of the town. " + paras[1]
        chapters.append((f"Chapter {numeral}: {subtitle}", paras))
        out += [f"CHAPTER {numeral}", "", subtitle.upper(), ""]
        for i, p in enumerate(paras):
            out += textwrap.wrap(p, 66) + [""]
            if n == 0 and i == 0:
                out += ["* * *", ""]  # a scene break
    # A hyphenated line end of each kind, in the last paragraph.
    last = "She thought the bay looked beauti-\nful tonight, and the well-\nknown lamps were lit."
    out += [last, ""]
    chapters[-1][1].append("She thought the bay looked beautiful tonight, and the well-known lamps were lit.")
    path.write_text("\n".join(out), encoding="utf-8")
    return Book(path, chapters)


def pdf_book(path: Path, seed: int = 7) -> Book:
    """A PDF made with fpdf2: running head with the book title, page numbers in the foot, chapter headings
    in larger type, indented paragraphs over several pages, one word hyphenated at a line end."""
    from fpdf import FPDF

    rng = random.Random(seed)
    chapters = _chapters(rng, 2, ["Chapter 1", "Chapter 2"], paras=(6, 8))
    chapters[0][1][2] = (
        "The lighthouse keeper considered the extraordinarily beautiful evening. "
        + chapters[0][1][2]
        + " An extraordinarily quiet night followed."
    )

    class Book_(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 9)
            self.cell(0, 8, "THE KEEPER'S YEAR", align="C")
            self.ln(12)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", "", 9)
            self.cell(0, 10, str(self.page_no()), align="C")

    pdf = Book_(format=(148, 210))
    pdf.set_title("The Keeper's Year")
    pdf.set_author("Owen Marsh")
    pdf.set_auto_page_break(True, margin=20)
    for title, paras in chapters:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, title)
        pdf.ln(16)
        pdf.set_font("Helvetica", "", 11)
        for text in paras:
            if "extraordinarily beautiful" in text:
                # force a hyphenated break inside "extraordinarily"
                text = text.replace("extraordinarily beautiful", "extraordi-\nnarily beautiful", 1)
                first, rest = text.split("\n", 1)
                pdf.multi_cell(0, 5.5, "      " + first, new_x="LMARGIN", new_y="NEXT")
                pdf.multi_cell(0, 5.5, rest, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.multi_cell(0, 5.5, "      " + text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
    pdf.output(str(path))
    return Book(path, chapters)


def scanned_pdf(path: Path) -> Path:
    """A page that is only a picture of text: no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(img)
    for i in range(20):
        draw.text((40, 40 + i * 30), "It was a dark and stormy night; the rain fell in torrents.", fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    buf.seek(0)
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(buf, x=10, y=10, w=180)
        buf.seek(0)
    pdf.output(str(path))
    return path


def _bag(texts) -> Counter:
    return Counter(w.casefold() for t in texts for w in words_of(t))


def assert_words_reach(book, rows) -> None:
    """Every word of every body paragraph is in its chapter's rows (as a multiset)."""
    got = chapters_of(rows)
    assert [t for t, _ in got] == [t for t, _ in book.chapters]
    for (title, paras), (_, chapter_rows) in zip(book.chapters, got):
        missing = _bag(paras) - _bag(r["text"] for r in chapter_rows)
        assert not missing, f"{title}: words missing from the manifest: {dict(missing)}"
