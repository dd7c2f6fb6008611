"""Media Overlay documents (EPUB 3 SMIL): one per content document that has narration.

Each row is a ``<par>`` (its element or span in the text, its stretch of the
chapter audio); a row with word timings is a ``<seq epub:textref>`` of one
``<par>`` per word, the word clips tiling the row's stretch (each runs to the
next word's start, the first starts at the row's start and the last ends at
its end), so playback never drops the audio between words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from .clock import clock

SMIL_NS = "http://www.w3.org/ns/SMIL"
OPS_NS = "http://www.idpf.org/2007/ops"


@dataclass
class Clip:
    id: str
    text: str  # src of <text>, relative to the SMIL file
    audio: str  # src of <audio>, relative to the SMIL file
    begin_ms: int
    end_ms: int


@dataclass
class Group:
    """One row: a single clip, or a sequence of word clips under ``textref``."""

    id: str
    clips: list[Clip] = field(default_factory=list)
    textref: str | None = None

    @property
    def duration_ms(self) -> int:
        return sum(c.end_ms - c.begin_ms for c in self.clips)


def _par(parent: etree._Element, clip: Clip) -> None:
    par = etree.SubElement(parent, f"{{{SMIL_NS}}}par", id=clip.id)
    etree.SubElement(par, f"{{{SMIL_NS}}}text", src=clip.text)
    etree.SubElement(
        par, f"{{{SMIL_NS}}}audio", src=clip.audio, clipBegin=clock(clip.begin_ms), clipEnd=clock(clip.end_ms)
    )


def smil_document(groups: list[Group]) -> bytes:
    root = etree.Element(f"{{{SMIL_NS}}}smil", nsmap={None: SMIL_NS, "epub": OPS_NS}, version="3.0")
    body = etree.SubElement(root, f"{{{SMIL_NS}}}body")
    for group in groups:
        if group.textref is None and len(group.clips) == 1:
            _par(body, group.clips[0])
            continue
        seq = etree.SubElement(body, f"{{{SMIL_NS}}}seq", id=group.id)
        seq.set(f"{{{OPS_NS}}}textref", group.textref or group.clips[0].text)
        for clip in group.clips:
            _par(seq, clip)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def overlay_duration_ms(groups: list[Group]) -> int:
    return sum(g.duration_ms for g in groups)
