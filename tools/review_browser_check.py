#!/usr/bin/env python3
"""The review panel's keys and clicks in a real JupyterLab 4, in headless Chromium: not a pytest (it needs a browser).

Runs docs/review_demo.ipynb, then, with the mouse over the large image, presses `a` (accept), clicks the open
image's object and presses `f` (fix), presses `r` (reject), drags a box and presses `c` (clear), and checks the
manifest rows the kernel wrote and the box field. Saves a screenshot of the whole notebook afterwards (default
docs/review_keys.png). Needs Debian's chromium and `pip install -e ".[screenshots]"` (playwright).

    .venv/bin/python tools/review_browser_check.py [--out docs/review_keys.png]
"""
import argparse, contextlib, json, os, shutil, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
from lab_screenshot import lab, browser, open_and_run, wait_run, wait_for, fit, save   # noqa: E402


def rows(labels: Path) -> dict:
    out = {}
    for line in (labels/'manifest.jsonl').read_text().splitlines():
        r = json.loads(line)
        out[r['file']] = r
    return out


def check(pg, labels: Path) -> list[str]:
    "Drive the panel with keys and clicks; what was seen, one line each (SystemExit on a failure)."
    seen = []
    imgs = pg.locator('.jp-OutputArea img')
    wait_for(lambda: imgs.count() >= 2, 'the thumbnails and the large image', timeout=120)
    big = imgs.last                                         # the thumbnails, then the large image
    title = lambda: pg.locator('.widget-html-content', has_text='doubt ').locator('b').first.inner_text()
    first = title()
    big.hover()
    pg.keyboard.press('a')
    wait_for(lambda: rows(labels)[first].get('reviewed') == 'accepted', f"'a' to accept {first}")
    seen.append(f"a: {first} accepted")
    wait_for(lambda: title() != first, 'the next image to open')
    second = title()
    box = big.bounding_box()
    big.click(position=dict(x=box['width'] / 2, y=box['height'] / 2))
    pg.keyboard.press('f')
    wait_for(lambda: rows(labels)[second].get('reviewed') == 'fixed', f"click + 'f' to fix {second}")
    seen.append(f"click + f: {second} fixed, status {rows(labels)[second]['status']}")
    big.hover()
    pg.keyboard.press('r')
    wait_for(lambda: rows(labels)[second].get('reviewed') == 'rejected', f"'r' to reject {second}")
    seen.append(f"r: {second} rejected, status {rows(labels)[second]['status']}")
    wait_for(lambda: title() != second, 'the next image to open')
    third, box = title(), big.bounding_box()
    pg.mouse.move(box['x'] + box['width'] * 0.2, box['y'] + box['height'] * 0.2)
    pg.mouse.down()
    pg.mouse.move(box['x'] + box['width'] * 0.8, box['y'] + box['height'] * 0.8, steps=5)
    pg.mouse.up()
    typed = pg.locator('input[placeholder="x0 y0 x1 y1"]')
    wait_for(lambda: len(typed.input_value().split()) == 4, 'a drag to fill the box field')
    seen.append(f"drag on {third}: box {typed.input_value()}")
    pg.keyboard.press('c')
    wait_for(lambda: typed.input_value() == '', "'c' to clear the prompts")
    seen.append("c: prompts cleared")
    cells = pg.locator('.jp-Notebook .jp-Cell').count()
    if cells != 2: raise SystemExit(f"FAIL: the notebook has {cells} cells: JupyterLab's 'a' shortcut fired too")
    seen.append("JupyterLab's own shortcuts did not fire (still 2 cells)")
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=str(ROOT/'docs'/'review_keys.png'))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix='segwl-review-check-'))
    env = dict(os.environ, SEGWL_REVIEW_DEMO=str(work))
    from playwright.sync_api import sync_playwright
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)       # the demo's folder, after JupyterLab stopped
        port = stack.enter_context(lab(ROOT/'docs', env))
        p = stack.enter_context(sync_playwright())
        b = browser(p)
        pg = b.new_page(viewport=dict(width=1300, height=900))
        open_and_run(pg, port, 'review_demo.ipynb')
        wait_run(pg, timeout=300)
        wait_for(lambda: (work/'labels'/'manifest.jsonl').exists(), 'the labels', timeout=120)
        try: seen = check(pg, work/'labels')
        finally:
            pg.mouse.move(5, 5)
            time.sleep(2)
            fit(pg)
            save(pg, a.out)
        for line in seen: print('ok:', line)
        b.close()
    print(a.out)


if __name__ == '__main__':
    main()
