"""Draw the course's architecture diagrams as plain SVG files in docs/diagrams/.

    python tools/diagrams.py            # (re)write every docs/diagrams/NAME.svg
    python tools/diagrams.py --check    # exit 1 if a committed file differs from what this writes

One function per diagram, each returning a :class:`Diagram` (``.svg()`` is the file's text):

- ``titans_layer.svg`` (:func:`titans_layer`): the Titans memory layer,
  :class:`hope_lite.layers.NeuralMemory` (Titans sec. 3 and 4.4): projections, causal
  convolution, SiLU and unit norm make q_t, k_t, v_t; gates make theta_t, eta_t, alpha_t; the
  write chain (surprise at the chunk start, momentum, forgetting; Titans eq 12-14) updates the
  memory M(x) = x + W_1 sigma(W_2 x) (NL eq 89); the causal read y_t = M_{t-1}(q_t) (Titans eq 15)
  goes through RMSNorm, the SiLU gate and W_o. For the Titans notebook and the layer's docs.
- ``mac_mag_mal.svg`` (:func:`mac_mag_mal`): Titans' three architectures side by side (Titans
  sec. 4.1-4.3). MAC as :mod:`hope_lite.models.titans` implements it; MAG and MAL as the paper
  describes them, marked "not in hope_lite". For the Titans models notebook.
- ``hope_block.svg`` (:func:`hope_block`): one HOPE block (NL Fig. 5, eq 94-97) as
  :mod:`hope_lite.models.hope` builds it: self-modifying Titans (M_k, M_v, M_eta, M_alpha read at
  their chunk start, M_memory written by DGD and read causally) then the sequential CMS on the
  token clock, each with a pre-norm residual. For the HOPE notebook.
- ``levels_clocks.svg`` (:func:`levels_clocks`): the levels of a HOPE model and when each is
  written over the 256 tokens of one sequence (NL Def. 2), fastest first, down to the outer
  AdamW loop, which runs between training steps. For the levels / CMS notebooks.
- ``course_map.svg`` (:func:`course_map`): the eleven notebooks in reading order, in three
  parts (a memory that learns while it reads; nested learning and HOPE; optimizers and evidence),
  each with what it builds. For notebook 00, the README and the book's index.
- ``chunk_reads.svg`` (:func:`chunk_reads`): 8 tokens in 2 chunks of 4: what each token reads
  with ``read="anchor"`` (NL eq 90 read literally) and with ``read="causal"`` (the default; Titans
  eq 15, NL eq 94), and that both take every token's gradient at its chunk-start state. For the
  chunked-memory notebook.

Style (shared by all): white background, sans-serif labels at 14 px, equation tags at 12 px in
grey, rounded boxes; neutral boxes #f6f8fa / #57606a, memories #fff4d6 / #9a6700, CMS levels
#e6f4ea / #1a7f37; read arrows blue #0b5cad, write arrows red #cf222e, gates and control grey.
Every box is sized from its text (0.6 x font size per character, plus padding). Labels use a tiny
markup: ``M_{t-1}`` is a subscript and ``W^{(f_{1})}`` a superscript (with a nested subscript),
drawn as ``<tspan baseline-shift="sub" font-size="75%">``; a bare ``_`` or ``^`` is literal.

:func:`layout_problems` checks a drawn diagram with the same estimates: no text outside the image
or over other text, no text outside its box, no arrow through a label or a box. :func:`main`
refuses to write a diagram with problems. Standard library only.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "docs" / "diagrams"

WIDTH = 960  # px, every diagram's viewBox width
FONT = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
LABEL = 14  # px: labels in boxes, legends, notes
TAG = 12  # px: equation tags and small grey notes
TITLE = 17  # px: the title line
CHAR = 0.6  # estimated character width, in units of the font size (bold: BOLD_CHAR)
BOLD_CHAR = 0.66
PAD_X, PAD_Y = 12, 7  # px of padding inside a box
LINE = 1.5  # line height in units of the font size

INK = "#1f2328"  # text and data-flow arrows
GREY = "#6e7781"  # equation tags, notes, gates and control arrows
READ = "#0b5cad"
WRITE = "#cf222e"
FRAME = "#d0d7de"  # panel and container outlines
KINDS = {  # box kind -> (fill, stroke)
    "neutral": ("#f6f8fa", "#57606a"),
    "memory": ("#fff4d6", "#9a6700"),
    "cms": ("#e6f4ea", "#1a7f37"),
}
ARROWS = {"ink": INK, "read": READ, "write": WRITE, "control": GREY}  # marker ids -> colour


# --------------------------------------------------------------------------- text markup


def _pieces(s: str) -> list[tuple[str, str]]:
    """Split ``s`` into ``("", text)``, ``("sub", inner)`` and ``("super", inner)`` pieces."""
    out, buf, i = [], "", 0
    while i < len(s):
        if s[i] in "_^" and s.startswith("{", i + 1):
            depth, j = 1, i + 2
            while depth:
                if j >= len(s):
                    raise ValueError(f"unbalanced braces in {s!r}")
                depth += {"{": 1, "}": -1}.get(s[j], 0)
                j += 1
            if buf:
                out.append(("", buf))
                buf = ""
            out.append(("sub" if s[i] == "_" else "super", s[i + 2 : j - 1]))
            i = j
        else:
            buf += s[i]
            i += 1
    if buf:
        out.append(("", buf))
    return out


def markup(s: str) -> str:
    """SVG text content of ``s``: ``_{..}`` and ``^{..}`` become shifted 75 % tspans."""
    return "".join(
        escape(t) if not kind
        else f'<tspan baseline-shift="{kind}" font-size="75%">{markup(t)}</tspan>'
        for kind, t in _pieces(s)
    )


def chars(s: str, scale: float = 1.0) -> float:
    """Width of ``s`` in characters of the full font size (sub/superscripts count 0.75)."""
    return sum(len(t) * scale if not kind else chars(t, scale * 0.75) for kind, t in _pieces(s))


def text_width(s: str, size: float, bold: bool = False) -> float:
    """Estimated width in px: 0.6 x size per character (0.66 if bold)."""
    return chars(s) * size * (BOLD_CHAR if bold else CHAR)


def _depth(s: str, kind: str) -> int:
    """How deeply ``kind`` ("sub" or "super") tspans nest in ``s``."""
    return max((int(k == kind) + _depth(t, kind) for k, t in _pieces(s) if k), default=0)


def text_extent(s: str, size: float) -> tuple[float, float]:
    """Estimated (ascent, descent) in px around the baseline, with room for shifted tspans
    (Chromium's text boxes: 0.93 and 0.21 of the size, a subscript about 0.35 lower)."""
    return size * (0.95 + 0.2 * _depth(s, "super")), size * (0.25 + 0.35 * _depth(s, "sub"))


def num(v: float) -> str:
    """A coordinate for the SVG text: at most one decimal, no trailing zeros."""
    return f"{round(v, 1):g}"


# --------------------------------------------------------------------------- geometry


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def north(self, dx: float = 0) -> tuple[float, float]:
        return (self.cx + dx, self.y)

    def south(self, dx: float = 0) -> tuple[float, float]:
        return (self.cx + dx, self.bottom)

    def west(self, dy: float = 0) -> tuple[float, float]:
        return (self.x, self.cy + dy)

    def east(self, dy: float = 0) -> tuple[float, float]:
        return (self.right, self.cy + dy)


@dataclass
class Extent:
    """An estimated text box, or a drawn box that arrows and other texts must avoid."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    owner: int = -1  # the box a text sits in (-1: none); a box's own id

    def overlaps(self, other: Extent, gap: float = 0.0) -> bool:
        return not (self.x1 + gap <= other.x0 or other.x1 + gap <= self.x0
                    or self.y1 + gap <= other.y0 or other.y1 + gap <= self.y0)

    def inside(self, other: Extent) -> bool:
        return (self.x0 >= other.x0 and self.x1 <= other.x1
                and self.y0 >= other.y0 and self.y1 <= other.y1)


def _segment_hits(p: tuple[float, float], q: tuple[float, float], r: Extent) -> bool:
    """Whether segment p-q enters the open rectangle ``r`` (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    for den, num_ in ((-dx, x0 - r.x0), (dx, r.x1 - x0), (-dy, y0 - r.y0), (dy, r.y1 - y0)):
        if den == 0:
            if num_ <= 0:
                return False
        else:
            t = num_ / den
            if den < 0:
                lo = max(lo, t)
            else:
                hi = min(hi, t)
    return hi - lo > 1e-9


# --------------------------------------------------------------------------- drawing


def _rows(lines: str | list) -> list[tuple[str, float, str]]:
    if isinstance(lines, str):
        lines = lines.split("\n")
    return [(t[0], TAG, GREY) if isinstance(t, tuple) else (t, LABEL, INK) for t in lines]


def _slot(text: str, size: float) -> tuple[float, float]:
    """(height, baseline from the top) of one line of a box: LINE x size, or more if shifted
    tspans need it, with the estimated extent centred in it."""
    up, down = text_extent(text, size)
    slot = max(LINE * size, up + down + 1)
    return slot, (slot - up - down) / 2 + up


def box_size(lines: str | list) -> tuple[float, float]:
    """(width, height) of a box around ``lines``: a string (one line per ``\\n``) or a list of
    strings and ``(text, "note")`` pairs (a note line is 12 px grey)."""
    rows = _rows(lines)
    return (max(text_width(t, s) for t, s, _ in rows) + 2 * PAD_X,
            sum(_slot(t, s)[0] for t, s, _ in rows) + 2 * PAD_Y)


@dataclass
class Diagram:
    """SVG parts plus the estimated extents that :func:`layout_problems` checks."""

    title: str
    height: float
    body: list[str] = field(default_factory=list)
    texts: list[Extent] = field(default_factory=list)
    boxes: list[Extent] = field(default_factory=list)
    paths: list[list[tuple[float, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.height <= 460:
            raise ValueError(f"height={self.height} must lie in (0, 460]")
        self.label(20, 28, self.title, size=TITLE, bold=True)

    # text ------------------------------------------------------------------

    def label(self, x: float, y: float, s: str, size: float = LABEL, anchor: str = "start",
              fill: str = INK, bold: bool = False, italic: bool = False, owner: int = -1) -> Extent:
        """A line of text with its baseline at ``y``; ``anchor``: start, middle or end."""
        w = text_width(s, size, bold)
        x0 = x - {"start": 0, "middle": w / 2, "end": w}[anchor]
        up, down = text_extent(s, size)
        extent = Extent(x0, y - up, x0 + w, y + down, s, owner)
        self.texts.append(extent)
        attrs = f' text-anchor="{anchor}"' if anchor != "start" else ""
        attrs += f' fill="{fill}"' if fill != INK else ""
        attrs += ' font-weight="bold"' if bold else ""
        attrs += ' font-style="italic"' if italic else ""
        self.body.append(f'<text x="{num(x)}" y="{num(y)}" font-size="{size:g}"{attrs}>'
                         f"{markup(s)}</text>")
        return extent

    def tag(self, x: float, y: float, s: str, anchor: str = "start") -> Extent:
        """An equation tag (12 px, grey)."""
        return self.label(x, y, s, size=TAG, anchor=anchor, fill=GREY)

    # boxes -----------------------------------------------------------------

    def box(self, x: float, y: float, lines: str | list, kind: str = "neutral",
            w: float | None = None, h: float | None = None, align: str = "left",
            dashed: bool = False) -> Box:
        """A rounded box sized from its text (see :func:`box_size`), top ``y``; ``x`` is its left
        edge, centre or right edge for ``align`` "left", "center" or "right"."""
        rows = _rows(lines)
        need_w, need_h = box_size(lines)
        w, h = w or need_w, h or need_h
        x -= {"left": 0, "center": w / 2, "right": w}[align]
        b = Box(x, y, w, h)
        fill, stroke = KINDS[kind]
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        self.body.append(f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" '
                         f'rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.3"{dash}/>')
        owner = len(self.boxes)
        self.boxes.append(Extent(x, y, x + w, y + h, rows[0][0], owner))
        top = b.cy - (need_h - 2 * PAD_Y) / 2
        for t, s, fill in rows:
            slot, baseline = _slot(t, s)
            self.label(b.cx, top + baseline, t, size=s, anchor="middle", fill=fill, owner=owner)
            top += slot
        return b

    def frame(self, x: float, y: float, w: float, h: float, dashed: bool = False,
              fill: str = "none", stroke: str = FRAME) -> Box:
        """A container outline (arrows may run inside it; not an obstacle)."""
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.body.append(f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" '
                         f'rx="10" fill="{fill}" stroke="{stroke}" stroke-width="1.3"{dash}/>')
        return Box(x, y, w, h)

    def plus(self, cx: float, cy: float, r: float = 10) -> Box:
        """A residual-add circle with a drawn plus sign (an obstacle for arrows)."""
        self.body.append(f'<circle cx="{num(cx)}" cy="{num(cy)}" r="{r:g}" fill="#ffffff" '
                         f'stroke="{INK}" stroke-width="1.4"/>')
        a = r * 0.55
        self.body.append(f'<path d="M{num(cx - a)} {num(cy)}H{num(cx + a)}M{num(cx)} {num(cy - a)}'
                         f'V{num(cy + a)}" stroke="{INK}" stroke-width="1.4"/>')
        owner = len(self.boxes)
        self.boxes.append(Extent(cx - r, cy - r, cx + r, cy + r, "+", owner))
        return Box(cx - r, cy - r, 2 * r, 2 * r)

    def dot(self, x: float, y: float) -> None:
        """A junction where an arrow branches off a line."""
        self.body.append(f'<circle cx="{num(x)}" cy="{num(y)}" r="3" fill="{INK}"/>')

    # arrows ----------------------------------------------------------------

    def arrow(self, *points: tuple[float, float], kind: str = "ink", dashed: bool = False,
              head: bool = True, width: float = 1.6) -> None:
        """A polyline through ``points`` with an arrowhead at the end; ``kind``: ink, read,
        write or control (grey)."""
        d = "M" + " L".join(f"{num(x)} {num(y)}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        end = f' marker-end="url(#head-{kind})"' if head else ""
        self.body.append(f'<path d="{d}" fill="none" stroke="{ARROWS[kind]}" '
                         f'stroke-width="{width:g}" stroke-linejoin="round"{dash}{end}/>')
        self.paths.append(list(points))

    def line(self, *points: tuple[float, float], color: str = GREY, width: float = 1.0,
             dashed: bool = False, check: bool = False) -> None:
        """A plain polyline (ticks, axes); ``check``: treat it like an arrow in the layout check."""
        d = "M" + " L".join(f"{num(x)} {num(y)}" for x, y in points)
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        self.body.append(f'<path d="{d}" fill="none" stroke="{color}" '
                         f'stroke-width="{width:g}"{dash}/>')
        if check:
            self.paths.append(list(points))

    # legend ----------------------------------------------------------------

    def legend(self, x: float, y: float, items: list[tuple[str, str, str]]) -> float:
        """A one-line legend at baseline ``y``: items ``(swatch, style, text)`` with swatch "arrow"
        (style: an arrow kind, "-dashed" appended for dashes), "box" (style: a box kind, or
        "frame-dashed") or "tick" (style: a colour). Returns the x after the last item."""
        for swatch, style, text in items:
            mid = y - 5
            if swatch == "arrow":
                kind, dashed = style.removesuffix("-dashed"), style.endswith("-dashed")
                self.arrow((x, mid), (x + 30, mid), kind=kind, dashed=dashed)
                x += 38
            elif swatch == "box":
                if style == "frame-dashed":
                    self.frame(x, mid - 8, 26, 16, dashed=True, stroke=GREY)
                else:
                    fill, stroke = KINDS[style]
                    self.body.append(f'<rect x="{num(x)}" y="{num(mid - 8)}" width="26" '
                                     f'height="16" rx="4" fill="{fill}" stroke="{stroke}" '
                                     f'stroke-width="1.3"/>')
                x += 34
            elif swatch == "tick":
                self.line((x + 4, mid + 7), (x + 4, mid - 7), color=style, width=2)
                self.line((x + 12, mid + 7), (x + 12, mid - 3), color=style, width=1)
                x += 22
            else:
                raise ValueError(f"swatch={swatch!r} is not known")
            x = self.label(x, y, text).x1 + 22
        return x

    # output ----------------------------------------------------------------

    def svg(self) -> str:
        w, h = WIDTH, num(self.height)
        defs = "".join(
            f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0 0L10 5L0 10z" fill="{color}"/></marker>'
            for kind, color in ARROWS.items()
        )
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
            f'height="{h}" font-family="{FONT}" fill="{INK}">'
        )
        parts = [head, f"<title>{escape(self.title)}</title>", f"<defs>{defs}</defs>",
                 f'<rect width="{w}" height="{h}" fill="#ffffff"/>', *self.body, "</svg>"]
        return "\n".join(parts) + "\n"


def layout_problems(d: Diagram) -> list[str]:
    """What is wrong with ``d``'s layout by the text-size estimates (an empty list: nothing)."""
    problems = []
    page = Extent(0, 0, WIDTH, d.height, "image")
    for t in d.texts:
        if not t.inside(page):
            problems.append(f"text {t.label!r} runs outside the image")
        if t.owner >= 0 and not t.inside(d.boxes[t.owner]):
            problems.append(f"text {t.label!r} runs outside its box")
        for b in d.boxes:
            if b.owner != t.owner and t.overlaps(b):
                problems.append(f"text {t.label!r} overlaps box {b.label!r}")
    for i, a in enumerate(d.texts):
        for b in d.texts[i + 1 :]:
            if a.overlaps(b):
                problems.append(f"texts {a.label!r} and {b.label!r} overlap")
    for points in d.paths:
        for p, q in itertools.pairwise(points):
            for t in d.texts:
                if _segment_hits(p, q, t):
                    problems.append(f"an arrow {p}->{q} crosses text {t.label!r}")
            for b in d.boxes:
                inner = Extent(b.x0 + 2, b.y0 + 2, b.x1 - 2, b.y1 - 2, b.label)
                if _segment_hits(p, q, inner):
                    problems.append(f"an arrow {p}->{q} crosses box {b.label!r}")
    return problems


def row(d: Diagram, x: float, y: float, items: list, gap: float = 30, kind: str = "neutral",
        h: float | None = None, arrow: str | None = "ink") -> list[Box]:
    """Boxes left to right from ``x`` with their tops at ``y`` (same height), joined by arrows."""
    boxes = []
    for item in items:
        lines, k = item if isinstance(item, tuple) else (item, kind)
        b = d.box(x, y, lines, kind=k, h=h)
        if boxes and arrow:
            d.arrow(boxes[-1].east(), b.west(), kind=arrow)
        boxes.append(b)
        x = b.right + gap
    return boxes


# --------------------------------------------------------------------------- 1. Titans layer


def titans_layer() -> Diagram:
    d = Diagram("The Titans memory layer: hope_lite.layers.NeuralMemory "
                "(Titans sec. 3 and 4.4)", 452)
    h1 = 34
    # row 1: projections, convolution, SiLU, unit norm (Titans sec. 4.4)
    x_in, proj, _conv, _silu, norm = row(
        d, 20, 56,
        ["x_{t}", "W_{q}, W_{k}, W_{v}", "causal conv, window 4", "SiLU", "unit norm (q, k)"], h=h1,
    )
    d.tag(proj.x, proj.y - 6, "Titans sec. 4.4")
    q = d.box(norm.right + 40, norm.y, "q_{t}", h=h1)
    d.arrow(norm.east(), q.west())
    # row 2: the gates from x_t; k_t, v_t on their way to the write
    gates = d.box(proj.x, 122, [
        "gates from x_{t}: linear + sigmoid, per head",
        "θ_{t} ∈ (0, θ_{max}(1 − η_{t})),  η_{t}, α_{t} ∈ (0, 1)",
    ])
    d.arrow(x_in.south(), (x_in.cx, gates.cy), gates.west(), kind="control")
    # row 3: the write chain, right to left into the memory
    y3, gap = 228, 30
    surprise_lines = ["surprise", "u_{t} = ∇‖M_{t′}(k_{t}) − v_{t}‖^{2}",
                      ("at the chunk start t′;", "note"), ("chunks of b = 16 (tiny: 8)", "note")]
    surprise = d.box(WIDTH - 20, y3, surprise_lines, align="right")
    d.tag(surprise.x, surprise.y - 6, "Titans eq 12")
    kv = d.box(surprise.cx, gates.y + 8, "k_{t}, v_{t}", h=h1, align="center")
    d.arrow(norm.south(), (norm.cx, kv.cy), kv.west())
    d.arrow(kv.south(), surprise.north(), kind="write")
    momentum = d.box(surprise.x - gap, y3, ["momentum", "S_{t} = η_{t} S_{t−1} − θ_{t} u_{t}"],
                     h=surprise.h, align="right")
    d.tag(momentum.right, momentum.y - 6, "Titans eq 14", anchor="end")
    forget = d.box(momentum.x - gap, y3, ["forgetting", "M_{t} = (1 − α_{t}) M_{t−1} + S_{t}"],
                   h=surprise.h, align="right")
    d.tag(forget.x, forget.y - 6, "Titans eq 13")
    d.arrow(surprise.west(), momentum.east(), kind="write")
    d.arrow(momentum.west(), forget.east(), kind="write")
    # the gates steer the write chain
    gx = momentum.x + 40  # left of the k_t, v_t line
    d.arrow(gates.east(), (gx, gates.cy), (gx, momentum.y), kind="control")
    d.label(gx + 8, gates.bottom + 17, "θ_{t}, η_{t}", fill=GREY)
    ax = forget.right - 40
    d.arrow((ax, gates.bottom), (ax, forget.y), kind="control")
    d.label(ax + 8, gates.bottom + 17, "α_{t}", fill=GREY)
    # the memory (rows 3 and 4, left) and the read
    read_lines = ["y_{t} = M_{t−1}(q_{t})", ("read: causal (default)", "note")]
    h4 = box_size(read_lines)[1]
    y4 = 366
    memory = d.box(20, y3, ["memory M (per head)", "M(x) = x + W_{1} σ(W_{2} x)",
                            ("σ = SiLU", "note"), ("M_{0}: meta-learned", "note")],
                   kind="memory", h=y4 + h4 - y3)
    d.tag(memory.x, memory.y - 6, "NL eq 89")
    d.arrow(forget.west(), (memory.right, forget.cy), kind="write")
    read, _norm, gate, _w_o, _out = row(
        d, memory.right + 40, y4,
        [read_lines, "RMSNorm", "⊗ SiLU(x_{t} W_{g})", "W_{o}", "out_{t}"], h=h4,
    )
    d.tag(read.x, read.y - 6, "Titans eq 15")
    d.tag(gate.x, gate.y - 6, "Titans sec. 4.4")
    d.arrow((memory.right, read.cy), read.west(), kind="read")
    chan = forget.bottom + 22
    d.arrow(q.east(), (WIDTH - 8, q.cy), (WIDTH - 8, chan), (read.cx + 40, chan),
            (read.cx + 40, read.y), kind="read")
    d.label(WIDTH - 14, chan + 17, "q_{t}", anchor="end", fill=READ)
    d.legend(20, 444, [("box", "memory", "memory state"), ("arrow", "write", "write"),
                       ("arrow", "read", "read"), ("arrow", "control", "gates"),
                       ("arrow", "ink", "data")])
    return d


# --------------------------------------------------------------------------- 2. MAC, MAG, MAL


def _panel(d: Diagram, x: float, w: float, title: str, section: str, status: str, ours: bool,
           top: float = 42, bottom: float = 416) -> Box:
    """A panel frame with a title, the paper's section and whether hope_lite implements it."""
    panel = d.frame(x, top, w, bottom - top, dashed=not ours, stroke=FRAME if ours else GREY)
    d.label(x + 14, top + 22, title, bold=True)
    d.tag(x + 14, top + 40, section)
    d.label(x + 14, top + 58, status, fill=INK if ours else GREY, italic=not ours)
    return panel


def mac_mag_mal() -> Diagram:
    d = Diagram("Titans' three ways to add the memory to attention (Titans sec. 4.1–4.3)", 460)
    # MAC, as hope_lite.models.titans implements it
    mac = _panel(d, 15, 360, "MAC: memory as context", "Titans sec. 4.1, eq 19, 21–25",
                 '✓ in hope_lite: mixer "mac" (TitansLM)', ours=True)
    steps = [
        ("", "segment S^{(t)} of C tokens"),
        ("eq 21", "read: h_{t} = M^{*}_{t−1}(q_{t})"),
        ("eq 22", "[p_{1} … p_{N_{p}}] || h_{t} || S^{(t)}"),
        ("eq 23", "causal attention → y_{t}"),
        ("eq 24", "write: M_{t} = M_{t−1}(y_{t})"),
        ("eq 25", "o_{t} = y_{t} ⊗ M^{*}(y_{t})"),
    ]
    fw = max(box_size(t)[0] for _, t in steps)
    fx, y, boxes = mac.x + 58, 110, []
    for tag, text in steps:
        b = d.box(fx, y, text, w=fw, h=33)
        if tag:
            d.tag(mac.x + 12, b.cy + 4, tag)
        if boxes:
            d.arrow(boxes[-1].south(), b.north())
        boxes.append(b)
        y = b.bottom + 13
    _segment, read, _window, _attn, write, gate = boxes
    memory = d.box(mac.right - 12, read.y, "M", kind="memory", w=44, h=gate.bottom - read.y,
                   align="right")
    d.arrow((memory.x, read.cy), read.east(), kind="read")
    d.arrow(write.east(), (memory.x, write.cy), kind="write")
    d.arrow((memory.x, gate.cy), gate.east(), kind="read")
    d.tag(mac.x + 12, gate.bottom + 18,
          "hope_lite tiny: C = 16, N_{p} = 4; small: C = 128, N_{p} = 16")
    d.tag(mac.x + 12, gate.bottom + 37, "⊗: y · sigmoid(RMSNorm(r)), r the memory's read")
    # MAG, as the paper describes it
    mag = _panel(d, mac.right + 15, 310, "MAG: memory as gate", "Titans sec. 4.2, eq 26–28",
                 "not in hope_lite", ours=False)
    inp = d.box(mag.cx, 150, "x̃ = [p_{1} … p_{N_{p}}] || x", align="center")
    d.tag(inp.x, inp.y - 6, "eq 26")
    bw = (mag.w - 24 - 16) / 2
    attn2 = d.box(mag.x + 12, 238, ["sliding-window", "attention: y"], w=bw)
    d.tag(attn2.x, attn2.y - 6, "eq 27")
    mem2 = d.box(mag.right - 12, 238, ["neural memory", "M(x̃)"], kind="memory", w=bw,
                 align="right")
    gate2 = d.box(mag.cx, 332, "o = y ⊗ M(x̃)", align="center")
    d.tag(gate2.x, gate2.y - 6, "eq 28")
    fork = inp.bottom + 22
    d.arrow(inp.south(), (inp.cx, fork), (attn2.cx, fork), attn2.north())
    d.arrow((inp.cx, fork), (mem2.cx, fork), mem2.north())
    d.arrow(attn2.south(), (attn2.cx, gate2.cy), gate2.west())
    d.arrow(mem2.south(), (mem2.cx, gate2.cy), gate2.east())
    # MAL, as the paper describes it
    mal = _panel(d, mag.right + 15, WIDTH - 15 - mag.right - 15, "MAL: memory as layer",
                 "Titans sec. 4.3, eq 29–31", "not in hope_lite", ours=False)
    inp3 = d.box(mal.cx, 150, "x̃ = [p] || x", align="center")
    mem3 = d.box(mal.cx, 232, ["neural memory", "y = M(x̃)"], kind="memory", align="center")
    attn3 = d.box(mal.cx, 320, ["sliding-window", "attention: o"], align="center")
    d.arrow(inp3.south(), mem3.north())
    d.arrow(mem3.south(), attn3.north())
    d.label(20, 437, 'hope_lite also has LMM (mixer "lmm"): the memory layer alone, then an MLP, '
                     "no attention (Titans sec. 4).")
    d.legend(20, 456, [("arrow", "read", "read"), ("arrow", "write", "write"),
                       ("arrow", "ink", "data"), ("box", "memory", "memory"),
                       ("box", "frame-dashed", "paper only")])
    return d


# --------------------------------------------------------------------------- 3. HOPE block


def hope_block() -> Diagram:
    d = Diagram("One HOPE block: hope_lite.models.HopeLM (NL Fig. 5, eq 94–97)", 460)
    # --- top band: x -> RMSNorm -> self-modifying Titans -> residual add
    stack_lines = ["M_{k}, M_{v}, M_{η}, M_{α}",
                   ("make k_{t}, v_{t}, η_{t}, α_{t} from x_{t},", "note"),
                   ("read at their chunk start:", "note"), ("C_{other} = 64 (tiny: 32)", "note")]
    dgd_lines = ["DGD write of every M_{□}", "W_{t} = W_{t−1}(α_{t} I − η_{t} k k^{T}) + S_{t}",
                 ("S_{t} = β S_{t−1} − η_{t} ∇L(M_{t′})", "note"),
                 ("target v̂ = M_{□}(v_{t}) (eq 84)", "note")]
    mem_lines = ["M_{memory}", ("C_{memory} = 16 (tiny: 8)", "note")]
    read_lines = ["o_{t} = M_{memory,t−1}(q_{t})", ("causal read (default)", "note")]
    gap, pad = 28, 12
    widths = [box_size(stack_lines)[0], box_size(dgd_lines)[0],
              max(box_size(mem_lines)[0], box_size(read_lines)[0])]
    cont_w = sum(widths) + 2 * gap + 2 * pad
    cont = d.frame(WIDTH - 46 - cont_w, 64, cont_w, 226)
    d.label(cont.x + 12, cont.y + 20,
            "self-modifying Titans (hope_lite.layers.SelfModifyingTitans)", bold=True)
    ya, yb = 108, 226
    stack = d.box(cont.x + pad, ya, stack_lines, kind="memory")
    d.tag(stack.x, stack.y - 6, "NL eq 83–85, 90")
    dgd = d.box(stack.right + gap, ya, dgd_lines)
    d.tag(dgd.x, dgd.y - 6, "NL eq 86–88")
    memory = d.box(dgd.right + gap, ya, mem_lines, kind="memory", w=widths[2])
    read = d.box(memory.x, yb, read_lines, w=widths[2])
    d.tag(read.x, read.y - 6, "NL eq 94")
    wq = d.box(stack.x, read.cy - 17, "q_{t} = x_{t} W_{q} (static)", h=34)
    d.tag(wq.x, wq.y - 6, "NL eq 83")
    d.arrow(stack.east(), dgd.west(stack.cy - dgd.cy))
    d.arrow(dgd.east(stack.cy - dgd.cy), (memory.x, stack.cy), kind="write")
    loop = dgd.bottom + 13
    d.arrow(dgd.south(), (dgd.cx, loop), (stack.cx + 40, loop), (stack.cx + 40, stack.bottom),
            kind="write")
    d.arrow(memory.south(), read.north(), kind="read")
    d.arrow(wq.east(), read.west())
    d.label(wq.right + 10, read.cy - 10, "q_{t}")
    # input, norm and the residual
    x_in = d.box(20, read.cy - 17, "x", h=34)
    norm1 = d.box(x_in.right + 14, read.cy - 17, "RMSNorm", h=34)
    d.arrow(x_in.east(), norm1.west())
    split = (norm1.right + cont.x) / 2
    d.arrow(norm1.east(), wq.west())
    d.arrow((split, read.cy), (split, stack.cy), stack.west())
    add1 = d.plus(WIDTH - 22, read.cy)
    d.arrow(read.east(), add1.west())
    d.arrow(x_in.north(), (x_in.cx, 48), (add1.cx, 48), add1.north())
    # --- bottom band: RMSNorm -> CMS levels in sequence -> residual add
    wrap = 302
    yl = 370
    levels = [["MLP^{(f_{1})}", ("every C_{1} = 16 tokens", "note")],
              ["MLP^{(f_{2})}", ("every C_{2} = 64 tokens", "note")],
              ["MLP^{(f_{3})}", ("every C_{3} = 256 tokens", "note")]]
    lw = max(box_size(lv)[0] for lv in levels)
    lh = box_size(levels[0])[1]
    norm2 = d.box(20, yl + lh / 2 - 17, "RMSNorm", h=34)
    cms = d.frame(norm2.right + 24, wrap + 10, 3 * lw + 2 * 34 + 2 * pad, yl + lh + 8 - wrap - 10)
    head = d.label(cms.x + 12, cms.y + 20, "CMS, sequential", bold=True)
    d.tag(head.x1 + 8, cms.y + 20, "NL eq 97, 70–71")
    lv_boxes = row(d, cms.x + pad, yl, [(lv, "cms") for lv in levels], gap=34, h=lh)
    bus = yl - 14
    d.line((lv_boxes[0].cx, bus), (lv_boxes[-1].cx, bus), color=WRITE, width=1.6, check=True)
    for b in lv_boxes:
        d.arrow((b.cx, bus), b.north(), kind="write")
    d.tag(cms.x + 12, bus - 8, "written while reading (token clock, default) with the next-token "
                               "loss gradient")
    d.arrow(norm2.east(), lv_boxes[0].west())
    add2 = d.plus(cms.right + 30, lv_boxes[0].cy)
    d.arrow(lv_boxes[-1].east(), add2.west())
    nxt = d.box(add2.right + 20, add2.cy - 17, "next block", h=34)
    d.arrow(add2.east(), nxt.west())
    d.arrow(add1.south(), (add1.cx, wrap), (norm2.cx, wrap), norm2.north())
    d.arrow((add2.cx, wrap), add2.north())
    d.dot(add2.cx, wrap)
    d.legend(20, 456, [("box", "memory", "memory (NL eq 89)"), ("box", "cms", "CMS level"),
                       ("arrow", "write", "write"), ("arrow", "read", "read"),
                       ("arrow", "ink", "data")])
    return d


# --------------------------------------------------------------------------- 4. levels and clocks


def levels_clocks() -> Diagram:
    d = Diagram("Levels of a HOPE model and when each is written "
                "(NL Def. 2; hope_lite defaults)", 456)
    n, x0, x1 = 256, 300, 770  # tokens of one sequence, the axis in px
    px = (x1 - x0) / n
    rows = [  # label, box kind, tag, right label, right note, (write period, chunk) or None
        ("M_{memory}", "memory", "NL eq 90", "every token", "chunks of 16 (tiny: 8)", (1, 16)),
        ("M_{k}, M_{v}, M_{η}, M_{α}", "memory", "NL eq 90", "every token",
         "chunks of 64 (tiny: 32)", (1, 64)),
        ("CMS level 1: MLP^{(f_{1})}", "cms", "NL eq 71", "every 16 tokens", "C_{1} = 16", (16, 0)),
        ("CMS level 2: MLP^{(f_{2})}", "cms", "NL eq 71", "every 64 tokens", "C_{2} = 64", (64, 0)),
        ("CMS level 3: MLP^{(f_{3})}", "cms", "NL eq 71", "every 256 tokens", "C_{3} = 256",
         (256, 0)),
        ("outer loop: AdamW", "neutral", "", "every training step", "learns initial states", None),
    ]
    lw = max(box_size(r[0])[0] for r in rows)
    top, pitch = 50, 49
    bottom = top + pitch * len(rows)
    for t in range(64, n + 1, 64):  # light guides across the rows
        d.line((x0 + t * px, top + 4), (x0 + t * px, bottom - 4), color="#eaeef2")
    for i, (name, kind, tag, right, note, clock) in enumerate(rows):
        y = top + i * pitch
        b = d.box(20, y + 6, name, kind=kind, w=lw, h=34, dashed=clock is None)
        if tag:
            d.tag(b.right + 8, b.cy + 4, tag)
        d.label(x1 + 16, b.cy - 1, right)
        d.tag(x1 + 16, b.cy + 15, note)
        base = b.cy + 11
        if clock is None:  # the outer loop: not on this clock at all
            d.frame(x0, b.y + 2, x1 - x0, b.h - 4, dashed=True, stroke=GREY)
            d.label((x0 + x1) / 2, b.cy + 5, "between training steps, not inside a sequence",
                    anchor="middle", fill=GREY)
            continue
        colour = KINDS[kind][1]
        d.line((x0, base), (x1, base), color="#d0d7de")
        write, chunk = clock
        if write == 1:  # the rule writes after every token; tall ticks at chunk starts
            thin = "".join(f"M{num(x0 + t * px)} {num(base)}v-7" for t in range(1, n + 1))
            d.body.append(f'<path d="{thin}" stroke="{colour}" stroke-width="0.6" opacity="0.8"/>')
            for t in range(0, n + 1, chunk):
                d.line((x0 + t * px, base), (x0 + t * px, base - 22), color=colour, width=2)
        else:
            for t in range(write, n + 1, write):
                d.line((x0 + t * px, base), (x0 + t * px, base - 22), color=colour, width=2.4)
    # the token axis
    ya = bottom + 8
    d.line((x0, ya), (x1, ya), color=INK, width=1.2)
    for t in (0, 16, 64, 128, 192, 256):
        d.line((x0 + t * px, ya), (x0 + t * px, ya + 5), color=INK, width=1.2)
        d.label(x0 + t * px, ya + 19, str(t), anchor="middle")
    d.label(x0 - 10, ya + 19, "token", anchor="end", fill=GREY)
    ticks = "memory rows: tall tick = chunk start (gradient anchor), thin = a write"
    d.legend(20, ya + 46, [("box", "memory", "memory"), ("box", "cms", "CMS level"),
                           ("tick", KINDS["memory"][1], ticks)])
    d.tag(20, ya + 68, "M_{memory} reads its latest state (causal, default); "
                       "M_{k}, M_{v}, M_{η}, M_{α} are read only at their chunk starts.")
    d.tag(20, ya + 88, "A CMS tick: the level is written once token i = 0 mod C_{l} has been read "
                       "(the token clock, default).")
    return d


# --------------------------------------------------------------------------- 5. chunked reads


def chunk_reads() -> Diagram:
    d = Diagram("Chunked memory: what each token reads, anchor vs causal "
                "(8 tokens, 2 chunks of 4)", 460)
    n, c, x0, pitch = 8, 4, 70, 102  # tokens, chunk size, x of M_0, px per token

    def block(top: float, heading: str, tag: str, causal: bool) -> None:
        head = d.label(20, top, heading, bold=True)
        d.tag(head.x1 + 10, top, tag)
        ys, yt = top + 16, top + 108  # tops of the state and token strips
        states = [d.box(x0 + j * pitch, ys, f"M_{{{j}}}", kind="memory", h=28, align="center")
                  for j in range(n + 1)]
        tokens = [d.box(x0 + (i - 0.5) * pitch, yt, f"x_{{{i}}}", h=30, w=46, align="center")
                  for i in range(1, n + 1)]
        for j in range(n):  # token j+1 writes M_{j+1} from M_j
            d.arrow(states[j].east(), states[j + 1].west(), kind="write")
        bus = states[0].bottom + 18
        for k in range(0, n, c):  # the gradient anchor of chunk k / c: its start state
            a = states[k]
            last = tokens[k + c - 1]
            d.line(a.south(6), (a.cx + 6, bus), (last.cx + 12, bus), color=WRITE, width=1.4,
                   dashed=True, check=True)
            for t in tokens[k : k + c]:
                d.arrow((t.cx + 12, bus), (t.cx + 12, t.y), kind="write", dashed=True, width=1.4)
            d.tag((a.cx + states[k + c].cx) / 2, last.bottom + 17,
                  f"chunk {k // c + 1}: gradients at M_{{{k}}}", anchor="middle")
        for i, t in enumerate(tokens, start=1):  # the reads
            src = states[i - 1] if causal else states[(i - 1) // c * c]
            d.arrow(src.south(-6), (t.cx - 8, t.y), kind="read")

    block(62, "anchor", 'read="anchor": every token reads its chunk-start state '
                        "(NL eq 90 read literally)", causal=False)
    block(246, "causal", 'read="causal", the default: token t reads M_{t−1} '
                         "(Titans eq 15, NL eq 94)", causal=True)
    d.label(20, 425, "Both write the same states; they differ only in what each token reads.")
    d.legend(20, 449, [("arrow", "read", "read"), ("arrow", "write", "write M_{t−1} → M_{t}"),
                       ("arrow", "write-dashed", "gradient taken at the chunk-start state"),
                       ("box", "memory", "memory state")])
    return d


# --------------------------------------------------------------------------- 6. course map

COURSE = (  # (part heading, box kind, notebooks: (number and title, what it builds, two lines))
    ("Part 1 · A memory that learns while it reads (Titans)", "memory", (
        ("00 · Start here", "a memory learns facts", "while it reads (eq 12)"),
        ("01 · Associative memory", "write: outer product; read:", "a product; softmax (eq 62)"),
        ("02 · Test-time learning", "surprise, momentum and", "forgetting (Titans eq 9-14)"),
        ("03 · Chunked training", "the same rule in chunks;", "anchor vs causal reads"),
    )),
    ("Part 2 · Nested learning and HOPE", "cms", (
        ("04 · Nested-learning view", "optimizers are memories;", "levels and their clocks"),
        ("05 · DGD, self-modifying", "delta GD (NL eq 56-57);", "memories write their rules"),
        ("06 · Continuum memory", "levels at several speeds", "(NL eq 70-74), token clock"),
        ("07 · The HOPE block", "Titans + CMS end to end;", "state size vs KV cache"),
    )),
    ("Part 3 · The optimizer and the evidence", "neutral", (
        ("08 · M3 optimizer", "Muon with a fast and a", "slow momentum (NL Alg. 1)"),
        ("09 · Reproductions", "the paper's claims beside", "ours, with 95 % intervals"),
        ("10 · Capstone", "design an ablation, run it,", "write its verdict"),
    )),
)  # fmt: skip


def course_map() -> Diagram:
    d = Diagram("The course: eleven notebooks, read in order (each builds on the one before)", 392)
    w, gap, pitch = 216, 20, 108  # box width, gap between boxes, px per part
    for i, (heading, kind, notebooks) in enumerate(COURSE):
        top = 62 + i * pitch
        d.label(20, top, heading, bold=True)
        boxes = [d.box(20 + j * (w + gap), top + 12, [title, (one, "note"), (two, "note")],
                       kind=kind, w=w) for j, (title, one, two) in enumerate(notebooks)]
        for a, b in itertools.pairwise(boxes):
            d.arrow(a.east(), b.west())
    d.tag(20, 62 + 3 * pitch - 4, "Every notebook runs top to bottom in a fresh kernel, checks its "
                                  "hand-written code against hope_lite, and ends with exercises.")
    return d


# --------------------------------------------------------------------------- registry

DIAGRAMS = {
    "titans_layer": titans_layer,
    "mac_mag_mal": mac_mag_mal,
    "hope_block": hope_block,
    "levels_clocks": levels_clocks,
    "chunk_reads": chunk_reads,
    "course_map": course_map,
}


def render_all() -> dict[str, str]:
    """``{file name: SVG text}`` for every diagram; raises if a layout check fails."""
    out = {}
    for name, make in DIAGRAMS.items():
        d = make()
        problems = layout_problems(d)
        if problems:
            raise ValueError(f"{name}.svg has layout problems:\n  " + "\n  ".join(problems))
        out[f"{name}.svg"] = d.svg()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a file in docs/diagrams differs from what would be written")
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help="output folder (default docs/diagrams)")
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        stale = [n for n, text in files.items() if not (args.out / n).exists()
                 or (args.out / n).read_text(encoding="utf-8") != text]
        for n in stale:
            print(f"{args.out / n} is missing or out of date: run python tools/diagrams.py",
                  file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (args.out / n).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
