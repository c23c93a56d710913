"""The README's pictures come from one script: every picture a document shows is a scene that
`python -m scripts.pictures` makes, every scene's picture is there, and docs/ holds no picture nobody
shows."""

import re
from pathlib import Path

from scripts.pictures import SCENES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Charts the benchmark draws (bench.report), not screenshots: made by `python -m bench.run --out docs`.
CHARTS = {p.name for p in DOCS.glob("bench*.png")}


def shown(document: Path) -> set[str]:
    """The docs/*.png a Markdown document shows (its links are relative to the document)."""
    found = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", document.read_text(encoding="utf-8"))
    return {(document.parent / link).resolve().relative_to(DOCS).as_posix() for link in found}


def test_every_picture_the_readme_shows_is_a_scene_of_the_script():
    readme = shown(ROOT / "README.md")

    assert readme, "the README shows no picture"
    assert readme <= set(SCENES), f"not made by scripts/pictures.py: {sorted(readme - set(SCENES))}"


def test_every_scene_is_shown_by_the_readme_and_its_picture_exists():
    assert set(SCENES) <= shown(ROOT / "README.md")
    assert [name for name in SCENES if not (DOCS / name).is_file()] == []


def test_docs_holds_no_picture_that_nothing_shows():
    everything_shown = set().union(*(shown(d) for d in [ROOT / "README.md", *DOCS.glob("*.md")]))
    pictures = {p.name for p in DOCS.glob("*.png")}

    assert pictures - CHARTS == set(SCENES)
    assert pictures <= everything_shown | {
        p.name for p in DOCS.glob("bench*.png") if (DOCS / f"{p.stem}.md").exists()
    }
