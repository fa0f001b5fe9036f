"""Read a report as a reader would: headless Chromium (DOM and screenshot), pdftotext/pdfinfo."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
POPPLER = shutil.which("pdftotext") and shutil.which("pdfinfo")
needs_chromium = pytest.mark.skipif(not CHROMIUM, reason="headless Chromium not installed (make system-deps: Debian chromium)")
needs_poppler = pytest.mark.skipif(not POPPLER, reason="pdftotext/pdfinfo not installed (make system-deps: poppler-utils)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND"]  # offline: a report must not need the network


def _chromium(args: list[str]) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                             text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def dom(html: Path):
    """The DOM after Chromium loaded the page, parsed with BeautifulSoup."""
    from bs4 import BeautifulSoup

    return BeautifulSoup(_chromium(["--dump-dom", html.resolve().as_uri()]), "html.parser")


def screenshot(html: Path, name: str, height: int = 9000):
    """A full-width screenshot kept in tests/artifacts/<name>.png (cropped to the page); returns the image."""
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / f"{name}.png"
    _chromium([f"--screenshot={png}", f"--window-size=1280,{height}", "--hide-scrollbars", html.resolve().as_uri()])
    im = Image.open(png).convert("RGB")
    gray = im.convert("L").point(lambda v: 255 if v > 250 else 0)
    box = Image.eval(gray, lambda v: 255 - v).getbbox()  # content, without the white below the page
    im = im.crop((0, 0, im.width, min(im.height, box[3] + 20)))
    im.save(png)
    return im


def png_size(data_uri: str) -> tuple[int, int]:
    from PIL import Image

    assert data_uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1]))).size


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def page_footers(text: str) -> list[tuple[int, int]]:
    """The 'k / n' page numbers printed at the bottom of each page."""
    return [(int(a), int(b)) for a, b in re.findall(r"^\s*(\d+)\s*/\s*(\d+)\s*$", text, re.M)]


def table_rows(soup, table_id: str) -> list[list[str]]:
    table = soup.find("table", id=table_id)
    assert table is not None, f"no table #{table_id}"
    return [[c.get_text(" ", strip=True) for c in tr.find_all(["td", "th"])] for tr in table.select("tbody tr")]


def number(text: str) -> float:
    """A displayed number ('−' and stars and '%' stripped)."""
    return float(re.sub(r"[^0-9eE+.\-]", "", text.replace("−", "-")))


def check_self_contained(soup) -> None:
    """Nothing to fetch: no scripts, stylesheets or frames; every src/href is a data URI or an anchor."""
    assert not soup.find_all(["script", "link", "iframe", "object", "embed"])
    for tag in soup.find_all(src=True):
        assert tag["src"].startswith("data:"), tag["src"][:80]
    for tag in soup.find_all(href=True):
        assert tag["href"].startswith(("#", "data:")), tag["href"]
    assert "url(http" not in str(soup) and "@import" not in str(soup)
