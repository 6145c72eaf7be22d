"""`gpen review`: the page is written from a report, escapes what it shows, works offline,
and renders in a real browser (headless Chromium) with its images, scores and filter."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gpen_cli.cli import app

DATA = Path(__file__).parent / "data"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ODD_NAME = "<img src=x onerror=alert(1)> & co.png"  # a legal file name that must not inject


def _face(index, box, identity, before=None, after=None, restored=True, why=None):
    return {
        "index": index,
        "box": box,
        "score": 0.99,
        "restored": restored,
        "why": why,
        "identity": identity,
        "quality_before": before,
        "quality_after": after,
    }


def _entry(source, output, faces, review=False, reasons=()):
    return {
        "input": source,
        "output": output,
        "status": "ok" if faces else "no_face",
        "faces": {
            "count": len(faces),
            "boxes": [face["box"] for face in faces],
            "scores": [face["score"] for face in faces],
            "items": faces,
        },
        "error": None,
        "review": review,
        "review_reasons": list(reasons),
    }


def _schema3_job(folder: Path) -> Path:
    """Photos on disk (the astronaut with the official pipeline's output from seeded
    weights, whose face is lost; a Solvay crop and a sharpened copy) and a schema-3 report
    naming them by paths relative to `folder`, as a run started there writes them."""
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    shutil.copy(DATA / "photos" / "astronaut_320.png", folder / "in" / "astronaut.png")
    shutil.copy(DATA / "official" / "astronaut_320_GPEN.png", folder / "out" / "astronaut.png")
    group = cv2.imread(str(DATA / "photos" / "solvay_crop.png"))
    cv2.imwrite(str(folder / "in" / ODD_NAME), group)
    sharpened = cv2.addWeighted(group, 1.8, cv2.GaussianBlur(group, (0, 0), 2), -0.8, 0)
    cv2.imwrite(str(folder / "out" / ODD_NAME), sharpened)
    group_faces = [
        _face(0, [19.8, 34.7, 55.9, 80.4], 0.97, 0.31, 0.62),
        _face(1, [38.2, 89.0, 76.1, 135.0], 0.88, 0.28, 0.57),
        _face(2, [121.3, 11.0, 155.5, 57.3], None, restored=False, why="not chosen by --faces"),
    ]
    results = [
        _entry(
            "in/astronaut.png",
            "out/astronaut.png",
            [_face(0, [112.2, 35.9, 169.8, 109.6], 0.23, 0.45, 0.12)],
            review=True,
            reasons=["face 0: identity 0.23 below 0.5"],
        ),
        _entry(f"in/{ODD_NAME}", f"out/{ODD_NAME}", group_faces),
    ]
    report = {
        "schema_version": 3,
        "summary": {
            "ok": 2,
            "no_face": 0,
            "skipped": 0,
            "failed": 0,
            "faces": 4,
            "review": 1,
            "lowest_identity": {"input": "in/astronaut.png", "face": 0, "identity": 0.23},
        },
        "command": "batch",
        "results": sorted(results, key=lambda row: row["input"]),
    }
    path = folder / "report.json"
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path


def _review(*args: str):
    return CliRunner().invoke(app, ["review", *args])


def _chromium(
    page: Path, profile: Path, *args: str, hash_: str = ""
) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
        page.resolve().as_uri() + hash_,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_renders_in_chromium_with_its_images_scores_and_filter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = _schema3_job(tmp_path)
    result = _review(str(report), "-o", "site/review.html")
    assert result.exit_code == 0, result.output
    assert "review page: site/review.html (2 photos, 1 to review)" in result.output
    page = tmp_path / "site" / "review.html"

    shot = tmp_path / "shot.png"
    _chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,900")
    pixels = cv2.imread(str(shot))
    assert pixels.shape[:2] == (900, 1200)
    # The astronaut's face thumbnail (its lost face, shown at its own size) is on screen.
    face = cv2.imread(str(tmp_path / "site" / "review_files" / "2-after-face0.jpg"))
    match = cv2.matchTemplate(pixels, face, cv2.TM_CCOEFF_NORMED).max()
    assert match > 0.9, match
    # The photo's before/after comparison is there: thousands of colours, not a page's few.
    colours = np.unique(pixels[:, :700].reshape(-1, 3) // 8, axis=0)
    assert len(colours) > 3000, len(colours)

    dom = _chromium(page, tmp_path / "profile", "--dump-dom", hash_="#review").stdout
    assert '<html lang="en" class="js">' in dom  # the page's script ran
    cards = re.findall(r'<article class="([^"]*)" id="photo-(\d)" data-review="(\d)"([^>]*)>', dom)
    assert [(number, review) for _, number, review, _ in cards] == [("2", "1"), ("1", "0")]
    assert ["hidden" in rest for *_, rest in cards] == [False, True]  # only the one to review
    assert "Showing 1 of 2 photos" in dom
    first = dom[dom.index('id="photo-2"') : dom.index('id="photo-1"')]  # worst identity first
    assert '<span class="identity">0.23</span>' in first and "0.45 → 0.12" in first
    assert "face 0: identity 0.23 below 0.5" in first
    assert "<img src=x" not in dom  # the photo's name stayed text
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co.png" in dom


def test_a_report_without_scores_shows_dashes_escapes_names_and_links_relatively(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    report = _schema3_job(tmp_path)
    payload = json.loads(report.read_text())
    for row in payload["results"]:  # today's schema 2: no items, no review keys
        for key in ("review", "review_reasons"):
            del row[key]
        del row["faces"]["items"]
    payload["schema_version"] = 2
    for key in ("review", "lowest_identity"):
        del payload["summary"][key]
    report.write_text(json.dumps(payload))
    result = _review(report.name)  # default: review.html beside the report
    assert result.exit_code == 0, result.output
    html = (tmp_path / "review.html").read_text(encoding="utf-8")
    assert 'data-review="1"' not in html and 'identity</dt><dd><span class="identity">—' in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not re.search(r"https?://", html)  # nothing from a network
    assert str(tmp_path) not in html  # every link relative to the page's folder
    assert 'href="in/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%20%26%20co.png"' in html
    written = sorted(p.name for p in (tmp_path / "review_files").iterdir())
    assert written == sorted(
        [f"{n}-{side}.jpg" for n in (1, 2) for side in ("before", "after")]
        + [
            f"{n}-{side}-face{i}.jpg"
            for n, i in ((1, 0), (1, 1), (1, 2), (2, 0))
            for side in ("before", "after")
        ]
    )


def test_a_missing_photo_is_said_on_its_card_and_the_exit_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = _schema3_job(tmp_path)
    (tmp_path / "out" / "astronaut.png").unlink()
    result = _review(str(report), "-o", "review.html")
    assert result.exit_code == 1, result.output
    assert "1 file the report names not found, e.g. out/astronaut.png" in result.output
    html = (tmp_path / "review.html").read_text(encoding="utf-8")
    assert "out/astronaut.png: missing (not found where the report says)" in html
    group = html[html.index('id="photo-1"') :]  # its faces worst identity first, unscored last
    assert re.findall(r'data-face="(\d)"', group) == ["1", "0", "2"]
    assert not (tmp_path / "review_files" / "2-after.jpg").exists()  # the astronaut
    assert '<span class="tag">before only</span>' in html


def test_an_unreadable_report_or_no_photo_at_all_is_one_line_and_no_page(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = _review(str(bad), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {bad}: not a JSON report (")
    assert len(result.output.strip().splitlines()) == 1
    gone = tmp_path / "gone.json"
    gone.write_text(json.dumps({"results": [_entry("nowhere/a.jpg", "out/a.jpg", [])]}))
    result = _review(str(gone), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert "nowhere/a.jpg: no such file (named by the report)" in result.output
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    result = _review(str(gone), "-o", str(mine))
    assert result.exit_code == 2 and "is not a review page gpen wrote" in result.output
    assert not (tmp_path / "r.html").exists() and mine.read_text() == "<p>my notes</p>"


@pytest.mark.slow
def test_batch_writes_the_page_at_the_end_and_refuses_a_foreign_one_first(
    tmp_path, monkeypatch, tiny_checkpoint
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    shutil.copy(DATA / "photos" / "solvay_crop.png", tmp_path / "in" / "group.png")
    args = ["batch", "in", "-o", "out", "--review-page", "--model", str(tiny_checkpoint)]
    args += ["--aligned", "--device", "cpu"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "review.html").write_text("mine")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "is not a review page gpen wrote" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["review.html"]  # nothing run
    (tmp_path / "out" / "review.html").unlink()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "review page: out/review.html (1 photo)" in result.output
    html = (tmp_path / "out" / "review.html").read_text(encoding="utf-8")
    assert 'href="../in/group.png"' in html and 'href="group.png"' in html
    assert {"1-before.jpg", "1-after.jpg"} <= {
        p.name for p in (tmp_path / "out/review_files").iterdir()
    }
