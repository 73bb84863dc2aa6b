"""The four walkthroughs as one page: shared prose once, each step as a tab set.

Each walkthrough is cut into blocks: a markdown cell into its paragraphs, a code cell whole.
Blocks that all four walkthroughs have are *anchors*:

* a paragraph equal in all four once whitespace is ignored and each framework's own words
  (book/book.toml, ``[[same]]``) are replaced by a common placeholder: it shows once;
* a code cell whose first statement defines the same name in all four (``x = ...``,
  ``class MLP``; the first such cell of each): it starts a new step.

Anchors are kept in the longest order all four agree on. Between two anchors, each
framework's blocks form one tab of a tab set; a step's tab starts with the prose that leads
into its code cell. A heading that is not shared becomes a rubric inside its tab, so a
framework-only section (JAX's NNX, TensorFlow's ``.keras`` files) shows in that tab only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import nbformat


@dataclass
class Block:
    kind: str  # "markdown" (one paragraph) or "code" (one cell)
    text: str
    key: tuple | None = None  # what it is aligned on, if anything
    outputs: list = field(default_factory=list)


@dataclass
class Same:
    """Words a paragraph may differ by across walkthroughs and still show once, as `shown`."""
    shown: str
    spelled: dict[str, str]  # framework -> its spelling

    def pattern(self, framework: str) -> re.Pattern:
        """The framework's spelling, as a whole word where it starts or ends with one."""
        word = self.spelled[framework]
        before = r"(?<![\w-])" if re.match(r"\w", word) else ""
        after = r"(?![\w-])" if re.search(r"\w$", word) else ""
        return re.compile(before + re.escape(word) + after)


def paragraphs(source: str) -> list[str]:
    """A markdown cell's paragraphs (blank-line separated, fences kept whole); a heading is a
    paragraph of its own even without a blank line after it."""
    out, current, fence = [], [], None
    for line in source.splitlines():
        stripped = line.lstrip()
        if fence:
            current.append(line)
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        if not stripped and not fence:
            out.append(current)
            current = []
        elif re.match(r"#{1,6} ", line) and not fence:
            out += [current, [line]]
            current = []
        else:
            current.append(line)
    out.append(current)
    return [text for text in ("\n".join(p).strip("\n") for p in out) if text.strip()]


def defines(source: str) -> str | None:
    """What a code cell's first statement defines: `x`, `x2, y2`, `class MLP`; else None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    first = body[0] if body else None
    if isinstance(first, ast.Assign) and len(first.targets) == 1:
        return ast.unparse(first.targets[0])
    if isinstance(first, (ast.ClassDef, ast.FunctionDef)):
        return f"{type(first).__name__} {first.name}"
    return None


def blocks(nb: nbformat.NotebookNode, framework: str, same: list[Same]) -> list[Block]:
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for text in paragraphs(cell.source):
                flat = " ".join(text.split())
                for i, s in enumerate(same):
                    flat = s.pattern(framework).sub(f"\0{i}\0", flat)
                out.append(Block("markdown", text, ("markdown", flat)))
        elif cell.cell_type == "code":
            name = defines(cell.source)
            out.append(Block("code", cell.source, name and ("code", name), cell.get("outputs", [])))
    return out


def anchors(walks: dict[str, list[Block]]) -> list[dict[str, int]]:
    """The blocks all walkthroughs share (first occurrence of each key), as {framework: index},
    in the longest order that every walkthrough agrees on."""
    firsts = []
    for blocks_ in walks.values():
        first = {}
        for i, b in enumerate(blocks_):
            if b.key is not None:
                first.setdefault(b.key, i)
        firsts.append(first)
    keys = [k for k in firsts[0] if all(k in f for f in firsts[1:])]
    points = sorted(([f[k] for f in firsts] for k in keys))
    # Longest chain increasing in every walkthrough (a few dozen points: quadratic is fine).
    best, back = [1] * len(points), [-1] * len(points)
    for j, q in enumerate(points):
        for i in range(j):
            if all(a < b for a, b in zip(points[i], q)) and best[i] + 1 > best[j]:
                best[j], back[j] = best[i] + 1, i
    chain, j = [], max(range(len(points)), key=best.__getitem__, default=-1)
    while j >= 0:
        chain.append(points[j])
        j = back[j]
    return [dict(zip(walks, p)) for p in reversed(chain)]


def steps(walks: dict[str, list[Block]]) -> list[tuple[str, object]]:
    """The page as ("shared", Block) and ("tabs", {framework: [Block]}) items, in order."""
    items, cursor = [], dict.fromkeys(walks, 0)

    def tabs(ends: dict[str, int]) -> None:
        part = {fw: walks[fw][cursor[fw]:ends[fw]] for fw in walks}
        if any(part.values()):
            items.append(("tabs", part))
        cursor.update(ends)

    for anchor in anchors(walks):
        kind = walks[next(iter(walks))][next(iter(anchor.values()))].kind
        if kind == "markdown":
            tabs(anchor)
            items.append(("shared", {fw: walks[fw][i] for fw, i in anchor.items()}))
            cursor.update({fw: i + 1 for fw, i in anchor.items()})
        else:  # a step starts with the prose that leads into its code cell
            starts = {}
            for fw, i in anchor.items():
                while i > cursor[fw] and walks[fw][i - 1].kind == "markdown":
                    i -= 1
                starts[fw] = i
            tabs(starts)
    tabs({fw: len(b) for fw, b in walks.items()})
    return items


def _fence(text: str, char: str = "`") -> str:
    longest = max((len(m) for m in re.findall(rf"{re.escape(char)}+", text)), default=0)
    return char * max(3, longest + 1)


def _code(block: Block) -> str:
    """A code cell and its stored outputs, in the containers and classes myst-nb gives them."""
    f = _fence(block.text)
    cell = [":::{container} cell_input", f"{f}{{code-block}} ipython3\n{block.text}\n{f}", ":::"]
    shown = []
    for out in block.outputs:
        if out.output_type == "stream":
            shown.append(("output stream", out.text))
        elif "text/plain" in out.get("data", {}):
            shown.append(("output text_plain", out.data["text/plain"]))
        else:  # the walkthroughs print text only; anything else would be lost without a word
            raise ValueError(f"an output the interleaved page cannot show: {dict(out)}"[:200])
    if shown:
        cell += [":::{container} cell_output"]
        for cls, text in shown:
            text = text.rstrip("\n")
            f = _fence(text)
            cell += [f"{f}{{code-block}} myst-ansi\n:class: {cls}\n\n{text}\n{f}"]
        cell += [":::"]
    return "::::{container} cell\n" + "\n".join(cell) + "\n::::"


def _heading_as_rubric(text: str) -> str:
    m = re.match(r"(#{1,6}) (.*)", text)
    return f":::{{rubric}} {m.group(2)}\n:::" if m else text  # (a title may hold backticks)


def render(notebooks: dict[str, nbformat.NotebookNode], labels: dict[str, str],
           same: list[Same], shown_from: str, sync_group: str = "framework") -> str:
    """The interleaved page as MyST markdown (frameworks in the order of `notebooks`)."""
    walks = {fw: blocks(nb, fw, same) for fw, nb in notebooks.items()}
    page = []
    for kind, item in steps(walks):
        if kind == "shared":
            text = item[shown_from].text
            for s in same:
                text = s.pattern(shown_from).sub(lambda _: s.shown, text)
            page.append(text)
            continue
        tabset = [f"::::::{{tab-set}}\n:sync-group: {sync_group}\n"]
        present = [labels[fw] for fw, b in item.items() if b]
        for fw, blocks_ in item.items():
            body = [(_code(b) if b.kind == "code" else _heading_as_rubric(b.text)) for b in blocks_]
            if not body:
                where = " and ".join(present) if len(present) < 3 else ", ".join(present)
                plural = "walkthroughs" if len(present) > 1 else "walkthrough"
                body = [f"*Nothing here for {labels[fw]}: this step is in the {where} {plural} only.*"]
            tabset.append(f":::::{{tab-item}} {labels[fw]}\n:sync: {fw}\n\n" + "\n\n".join(body)
                          + "\n:::::\n")
        page.append("\n".join(tabset) + "::::::")
    return "\n\n".join(page) + "\n"
