#!/usr/bin/env python3
"""Screenshots of the documentation site (`make docs` first) in headless Chromium: a module page at its figure, and
the walkthrough at its first figures. Needs Debian's chromium and playwright (`pip install -e ".[screenshots]"`).

    make docs && .venv/bin/python tools/site_screenshots.py [--site _site/html] [--out docs]
"""
import argparse, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
from lab_screenshot import browser, save   # noqa: E402
# (page, heading to scroll to or None for the top, picture)
SHOTS = [('15_review.html', 'Shown in a notebook', 'site_module.png'),
         ('tutorials/walkthrough.html', 'Step 1: stitch the reference and the target', 'site_walkthrough.png')]


def shoot(pg, page: Path, anchor: str | None, out: Path):
    "Open `page`, scroll the paragraph or heading that starts with `anchor` to the top, save the window to `out`."
    if not page.is_file(): raise SystemExit(f"{page}: no such page: run `make docs` first (or pass --site)")
    pg.goto(page.as_uri(), wait_until='load')
    pg.wait_for_function('Array.from(document.images).every(i => i.complete)')
    if anchor:
        el = pg.locator('h1, h2, h3, p', has_text=anchor).first
        if not el.count(): raise SystemExit(f"{page}: nothing starts with {anchor!r}: update SHOTS in {__file__}")
        el.evaluate('e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 10)')
    broken = pg.evaluate('Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)')
    if broken: raise SystemExit(f"{page}: images that do not load: {broken}")
    save(pg, out)
    print(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--site', default=str(ROOT/'_site'/'html'))
    ap.add_argument('--out', default=str(ROOT/'docs'))
    ap.add_argument('--width', type=int, default=1300)
    ap.add_argument('--height', type=int, default=1100)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = browser(p)
        pg = b.new_page(viewport=dict(width=a.width, height=a.height))
        for page, anchor, name in SHOTS: shoot(pg, Path(a.site)/page, anchor, Path(a.out)/name)
        b.close()


if __name__ == '__main__':
    main()
