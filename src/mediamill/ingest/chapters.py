"""From a stream of blocks and marks to chapters: which marks split the book.

Marks carry levels (TOC depth, heading level); levels are ranked 1..n. Rules:

- **Book title.** A lone mark at the top rank that comes first and has marks
  below it (one ``h1`` over ``h2`` chapters, a TOC with a single root) names
  the book, not a chapter: its own blocks join the opening section.
- **Split depth.** ``depth`` > 0 splits at ranks up to ``depth``. Automatic
  (0): start at rank 1 and go one rank deeper while (a) some mark at this rank
  has marks below it, (b) those parents hold little text of their own (at most
  a quarter of the words under them: a "Part One" page, a chapter's short
  opening) and (c) where the parents do hold some text, the sections at the
  next rank have a median of at least 300 words (so a chapter's sub-sections
  of a few lines never become chapters; pure containers are always opened).
  Marks deeper than the split depth stay inside their chapter (their headings
  are read).
- **Containers.** A mark above the split depth whose own blocks are only
  headings (a part title page) is not a chapter: its headings open the next
  chapter and its title prefixes that chapter's title ("Part One: Chapter 1").
  When chapter titles repeat in the book (each part restarting at "Chapter 1"),
  every chapter inside a container gets the prefix. A container with text of
  its own (a part's introduction) is a chapter of its own.
- Blocks before the first mark form an opening section named after the book.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .model import Block, Chapter, Mark

CONTENT_KINDS = ("para", "table", "alt", "note")


@dataclass
class _Node:
    mark: Mark
    rank: int
    blocks: list[Block] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None

    def own_words(self) -> int:
        return sum(len(b.text.split()) for b in self.blocks if b.kind in CONTENT_KINDS)

    def has_content(self) -> bool:
        return any(b.kind in CONTENT_KINDS for b in self.blocks)

    def tree_words(self) -> int:
        return self.own_words() + sum(c.tree_words() for c in self.children)


def _nodes(stream: list[Block | Mark]) -> tuple[list[Block], list[_Node]]:
    preamble: list[Block] = []
    nodes: list[_Node] = []
    levels = sorted({item.level for item in stream if isinstance(item, Mark)})
    rank_of = {level: i + 1 for i, level in enumerate(levels)}
    for item in stream:
        if isinstance(item, Mark):
            nodes.append(_Node(item, rank_of[item.level]))
        elif nodes:
            nodes[-1].blocks.append(item)
        else:
            preamble.append(item)
    stack: list[_Node] = []
    for node in nodes:
        while stack and stack[-1].rank >= node.rank:
            stack.pop()
        if stack:
            node.parent = stack[-1]
            stack[-1].children.append(node)
        stack.append(node)
    return preamble, nodes


def _auto_depth(nodes: list[_Node], max_rank: int) -> int:
    depth = 1
    while depth < max_rank:
        parents = [n for n in nodes if n.rank == depth and n.children]
        if not parents:
            break
        own = sum(p.own_words() for p in parents)
        under = sum(p.tree_words() for p in parents)
        if under and own > under / 4:
            break
        below = [c.tree_words() for p in parents for c in p.children]
        if own and below and statistics.median(below) < 300:
            break  # parents with text of their own over short sub-sections: keep the parents
        depth += 1
    return depth


def build_chapters(stream: list[Block | Mark], book_title: str, depth: int = 0) -> list[Chapter]:
    """Chapters in reading order (before any front-matter decision: see ``matter``)."""
    preamble, nodes = _nodes(stream)
    if not nodes:
        return [Chapter(book_title, preamble[0].source, preamble, frozenset({"opening"}))] if preamble else []
    top = [n for n in nodes if n.rank == 1]
    if len(top) == 1 and nodes[0] is top[0] and len(nodes) > 1:
        # A lone root names the book: its text opens the book, its children are the chapters.
        root = top[0]
        preamble = preamble + root.blocks
        nodes = nodes[1:]
        for node in nodes:
            node.rank -= 1
            if node.parent is root:
                node.parent = None
    if not nodes:
        return [Chapter(book_title, preamble[0].source, preamble, frozenset({"opening"}))] if preamble else []
    max_rank = max(n.rank for n in nodes)
    split = min(depth, max_rank) if depth > 0 else _auto_depth(nodes, max_rank)

    chapters: list[Chapter] = []
    containers: list[tuple[str, int]] = []  # (title, rank) of containers whose chapter has not started
    pending: list[Block] = []
    paths: list[list[str]] = []  # container titles above each chapter
    firsts: list[bool] = []  # whether the chapter is the first one inside its innermost container
    active: list[tuple[str, int]] = []
    if preamble:
        chapters.append(Chapter(book_title, preamble[0].source, preamble, frozenset({"opening"})))
        paths.append([])
        firsts.append(False)
    for node in nodes:
        if node.rank > split:
            if chapters:
                chapters[-1].blocks.extend(node.blocks)
            else:
                pending.extend(node.blocks)
            continue
        title = node.mark.title.strip() or _first_heading(node.blocks) or f"Chapter {len(chapters) + 1}"
        has_children = any(c.rank <= split for c in node.children)
        active = [(t, r) for t, r in active if r < node.rank]
        if node.rank < split and has_children and not node.has_content():
            containers.append((title, node.rank))
            active.append((title, node.rank))
            pending.extend(node.blocks)
            continue
        fresh = bool(containers)
        containers.clear()
        chapters.append(Chapter(title, node.mark.source, pending + node.blocks, node.mark.hints))
        paths.append([t for t, _ in active])
        firsts.append(fresh)
        pending = []
        if has_children:
            active.append((title, node.rank))
    if pending and chapters:
        chapters[-1].blocks.extend(pending)

    titles = [c.title for c in chapters]
    repeated = len(set(titles)) < len(titles)
    for chapter, path, first in zip(chapters, paths, firsts):
        path = [p for p in path if p != chapter.title]
        if path and (first or repeated):
            chapter.title = ": ".join([*path, chapter.title])
    return chapters


def _first_heading(blocks: list[Block]) -> str | None:
    return next((b.text for b in blocks if b.kind == "heading"), None)
