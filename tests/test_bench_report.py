"""The bench writes its tables and never a person's text: without `--out` it writes under test-results/,
and in an existing page it rewrites only the part between its marker comments."""

from pathlib import Path

import pytest

from bench import report, run

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_without_out_writes_under_test_results_never_docs():
    assert run.default_out(smoke=False) == ROOT / "test-results" / "bench"
    assert run.default_out(smoke=True) == ROOT / "test-results" / "bench-smoke"


def test_rewriting_a_page_keeps_the_hand_written_text_above_and_below():
    first = report.merge_generated(None, "| old table |")
    page = "# Notes\n\nWritten by hand.\n\n" + first + "\n## Findings (2026-12-03)\n\nAlso by hand.\n"

    again = report.merge_generated(page, "| new table |")

    assert again.startswith("# Notes\n\nWritten by hand.\n\n")
    assert again.endswith("\n## Findings (2026-12-03)\n\nAlso by hand.\n")
    assert "| new table |" in again and "| old table |" not in again
    assert report.merge_generated(again, "| new table |") == again


def test_a_page_without_the_markers_is_refused_and_left_as_it_was(tmp_path):
    page = tmp_path / "bench.md"
    page.write_text("# Our findings, all by hand\n")

    with pytest.raises(report.HandWrittenPage):
        report.check_writable(tmp_path, "bench")
    with pytest.raises(report.HandWrittenPage):
        report.write({}, tmp_path)
    assert page.read_text() == "# Our findings, all by hand\n"
    assert not (tmp_path / "bench.json").exists()


def test_the_command_refuses_such_a_page_before_it_measures_anything(tmp_path, monkeypatch):
    (tmp_path / "bench.md").write_text("by hand\n")
    measured = []
    monkeypatch.setattr(run, "measure", lambda *a, **k: measured.append(a))

    with pytest.raises(SystemExit) as stopped:
        run.main(["--out", str(tmp_path), "--chromium", "", "--emulated", "10"])

    assert stopped.value.code == 2
    assert measured == []


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("bench*.md")), ids=lambda p: p.name)
def test_the_committed_results_mark_their_generated_part(page):
    text = page.read_text()
    report.check_writable(page.parent, page.stem)
    assert text.count(report.BEGIN_GENERATED) == text.count(report.END_GENERATED) == 1
