"""The SVG diagrams in docs/diagrams/ are what tools/diagrams.py draws, and they fit their image."""

import importlib.util
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "tools" / "diagrams.py"
DIAGRAM_DIR = ROOT / "docs" / "diagrams"
EXPECTED = {"titans_layer.svg", "mac_mag_mal.svg", "hope_block.svg", "levels_clocks.svg",
            "chunk_reads.svg", "course_map.svg"}
SVG = "{http://www.w3.org/2000/svg}"
CHAR = 0.6  # estimated character width in units of the font size (as the generator estimates)


@pytest.fixture(scope="module")
def diagrams():
    spec = importlib.util.spec_from_file_location("diagrams", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("diagrams")
    sys.modules["diagrams"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        if saved is None:
            sys.modules.pop("diagrams", None)
        else:
            sys.modules["diagrams"] = saved


@pytest.fixture(scope="module")
def rendered(diagrams):
    return diagrams.render_all()


def committed() -> list[Path]:
    return sorted(DIAGRAM_DIR.glob("*.svg"))


def test_the_six_diagrams_exist(rendered):
    assert set(rendered) == EXPECTED
    assert {p.name for p in committed()} == EXPECTED


def test_committed_files_are_what_the_generator_writes(diagrams, rendered):
    for path in committed():
        assert path.read_text(encoding="utf-8") == rendered[path.name], (
            f"{path} is out of date: run python tools/diagrams.py")
    assert diagrams.main(["--check"]) == 0


def test_check_flags_a_changed_file(diagrams, tmp_path, capsys):
    assert diagrams.main(["--out", str(tmp_path)]) == 0
    assert diagrams.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "hope_block.svg").write_text("<svg/>", encoding="utf-8")
    assert diagrams.main(["--check", "--out", str(tmp_path)]) == 1
    assert "hope_block.svg" in capsys.readouterr().err


def _width_chars(elem: ET.Element, scale: float = 1.0) -> float:
    """Characters of a <text> element at its full size; tspans at their font-size percentage."""
    n = len(elem.text or "") * scale
    for child in elem:
        size = child.get("font-size", "100%")
        inner = scale * float(size.rstrip("%")) / 100 if size.endswith("%") else scale
        n += _width_chars(child, inner) + len(child.tail or "") * scale
    return n


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_svg_parses_and_every_text_fits_the_view_box(name):
    root = ET.parse(DIAGRAM_DIR / name).getroot()
    assert root.tag == f"{SVG}svg"
    x0, y0, w, h = map(float, root.get("viewBox").split())
    assert (x0, y0) == (0, 0) and w <= 1000 and h <= 460
    assert float(root.get("width")) == w and float(root.get("height")) == h
    assert root.find(f"{SVG}defs/{SVG}marker") is not None  # arrowheads
    texts = list(root.iter(f"{SVG}text"))
    assert texts
    for t in texts:
        size = float(t.get("font-size"))
        width = _width_chars(t) * size * CHAR
        x, y = float(t.get("x")), float(t.get("y"))
        left = x - {"start": 0, "middle": width / 2, "end": width}[t.get("text-anchor", "start")]
        label = "".join(t.itertext())
        outside = f"{name}: {label!r} runs outside the image"
        assert left >= 0 and left + width <= w, outside
        assert y - 0.8 * size >= 0 and y + 0.25 * size <= h, outside


def test_layouts_have_no_overlaps_by_the_estimates(diagrams):
    for name, make in diagrams.DIAGRAMS.items():
        assert diagrams.layout_problems(make()) == [], name


def test_markup_makes_shifted_tspans(diagrams):
    assert diagrams.markup("M_{t-1}") == 'M<tspan baseline-shift="sub" font-size="75%">t-1</tspan>'
    nested = diagrams.markup("W^{(f_{1})}")
    assert re.fullmatch(r'W<tspan baseline-shift="super" font-size="75%">\(f'
                        r'<tspan baseline-shift="sub" font-size="75%">1</tspan>\)</tspan>', nested)
    assert diagrams.markup("hope_lite & a<b") == "hope_lite &amp; a&lt;b"  # a bare _ is literal
    assert diagrams.chars("M_{t}") == pytest.approx(1.75)


def test_every_diagram_is_shown_and_every_shown_diagram_exists():
    """The notebooks link ../docs/diagrams/NAME.svg and the README docs/diagrams/NAME.svg."""
    pages = [*sorted((ROOT / "notebooks").glob("*.ipynb")), ROOT / "README.md"]
    shown = {name for page in pages
             for name in re.findall(r"docs/diagrams/([\w-]+\.svg)", page.read_text(encoding="utf-8"))}
    assert shown == EXPECTED == {p.name for p in DIAGRAM_DIR.glob("*.svg")}
