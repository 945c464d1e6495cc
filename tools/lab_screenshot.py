#!/usr/bin/env python3
"""Open a notebook in a real JupyterLab 4 in headless Chromium, run all its cells, save a screenshot of it whole.

Makes the JupyterLab pictures of docs/ from the repository alone (docs/README.md lists which). JupyterLab starts with
settings of its own in a temporary folder (yours are not read: no theme or news prompt of yours in the picture), the
left sidebar closed, and the window grows to the notebook's height so that nothing is cut off. Needs Debian's
chromium and `pip install -e ".[screenshots]"` (playwright; its own browser download is not used).

    .venv/bin/python tools/lab_screenshot.py docs/panel_demo.ipynb docs/panel.png [--width 1400] [--timeout 300]
    .venv/bin/python tools/lab_screenshot.py NB.ipynb OUT.png --at 'Step 2' --height 1500   # a window at a heading
"""
import argparse, contextlib, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

CHROMIUM = os.environ.get('SEGWL_CHROMIUM', '/usr/bin/chromium')
# JupyterLab settings for a picture: no news prompt, no notifications over the notebook, and no autosave (a run
# must not write its outputs into the committed notebook).
SETTINGS = {'@jupyterlab/apputils-extension/notification.jupyterlab-settings': dict(fetchNews='false',
                                                                                    doNotDisturbMode=True),
            '@jupyterlab/docmanager-extension/plugin.jupyterlab-settings': dict(autosave=False)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(cond, what: str, timeout: float = 60):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout: raise SystemExit(f"FAIL: timed out waiting for {what}")
        time.sleep(0.5)


def _up(port: int) -> bool:
    try: urllib.request.urlopen(f'http://127.0.0.1:{port}/lab', timeout=2)
    except Exception: return False
    return True


@contextlib.contextmanager
def lab(root: Path, env: dict | None = None):
    "A JupyterLab server on `root` with settings of its own, no token, on a free local port: yields the port."
    conf = Path(tempfile.mkdtemp(prefix='segwl-lab-settings-'))
    for name, value in SETTINGS.items():
        (conf/'user'/name).parent.mkdir(parents=True, exist_ok=True)
        (conf/'user'/name).write_text(json.dumps(value))
    port = free_port()
    srv = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                            '--IdentityProvider.token=', '--ServerApp.password=', '--allow-root',
                            f'--ServerApp.root_dir={root}', f"--LabApp.user_settings_dir={conf/'user'}",
                            f"--LabApp.workspaces_dir={conf/'workspaces'}"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _up(port), 'JupyterLab to start')
        yield port
    finally:
        srv.terminate()
        try: srv.wait(30)
        except subprocess.TimeoutExpired: srv.kill()
        shutil.rmtree(conf, ignore_errors=True)


def browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run'])


def open_and_run(pg, port: int, name: str):
    "Open notebook `name`, accept the kernel dialog if any, close the left sidebar, run all cells."
    pg.goto(f"http://127.0.0.1:{port}/lab/tree/{name}?reset", wait_until='domcontentloaded')
    pg.wait_for_selector('.jp-Notebook', timeout=60000)
    wait_for(lambda: 'Idle' in pg.locator('.jp-StatusBar-Widget, #jp-main-statusbar').first.inner_text()
             or pg.locator('.jp-Dialog').count(), 'the kernel to start')
    dlg = pg.locator('.jp-Dialog button.jp-mod-accept')
    if dlg.count(): dlg.first.click()
    if pg.locator('#jp-left-stack:visible').count():                   # the file browser: room for the notebook
        pg.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current').first.click()
    pg.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
    pg.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()


def wait_run(pg, timeout: float = 300, settle: float = 3):
    "Until the kernel has been idle for 3 s with no cell waiting (`[*]`), then `settle` s more; a traceback fails."
    calm = [0]
    def done():
        idle = pg.locator('.jp-Notebook-ExecutionIndicator').first.get_attribute('data-status') == 'idle'
        waiting = any('*' in t for t in pg.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts())
        calm[0] = calm[0] + 1 if idle and not waiting else 0
        return calm[0] >= 6
    wait_for(done, 'the cells to run', timeout)
    time.sleep(settle)
    tb = pg.locator('.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]').all_inner_texts()
    if tb: raise SystemExit(f"FAIL: the notebook raised:\n{tb[0][-2000:]}")


def fit(pg, most: int = 6000):
    "Make the window tall enough for the whole notebook down to its last cell (at most `most` px), at its top."
    panel = pg.locator('.jp-NotebookPanel .jp-WindowedPanel-outer').first       # what scrolls in JupyterLab 4
    for _ in range(3):                                # cells out of sight may be drawn late: measure again
        panel.evaluate('e => e.scrollTo(0, 0)')
        time.sleep(0.5)
        short = panel.evaluate("""e => { const cells = e.querySelectorAll('.jp-Cell');
            return Math.ceil(cells[cells.length - 1].getBoundingClientRect().bottom - e.getBoundingClientRect().bottom)
                   + 24; }""")
        if short <= 0: return
        size = pg.viewport_size
        pg.set_viewport_size(dict(width=size['width'], height=min(most, size['height'] + short)))
        time.sleep(1)


def scroll_to(pg, text: str):
    "Scroll the notebook so that the first heading or paragraph with `text` is at the top of the window."
    panel = pg.locator('.jp-NotebookPanel .jp-WindowedPanel-outer').first
    for _ in range(40):                               # cells out of sight may not be drawn yet: scroll down to them
        el = pg.locator('.jp-MarkdownCell', has_text=text)
        if el.count(): break
        panel.evaluate('e => e.scrollBy(0, e.clientHeight)')
        time.sleep(0.3)
    else: raise SystemExit(f"FAIL: no markdown cell with {text!r}")
    for _ in range(3):                                # cells drawn above it move it: align again
        el.first.evaluate('e => e.scrollIntoView({block: "start"})')
        time.sleep(1)


def save(pg, out, colours: int = 256):
    "The window as a PNG of at most `colours` colours (a third of the size; screenshots have few colours)."
    from PIL import Image
    pg.screenshot(path=str(out))
    if colours:
        im = Image.open(out).convert('RGB')
        im.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('notebook')
    ap.add_argument('out')
    ap.add_argument('--width', type=int, default=1400)
    ap.add_argument('--height', type=int, default=900, help='the least height; the window grows to the notebook')
    ap.add_argument('--timeout', type=float, default=300, help='seconds to let the cells run')
    ap.add_argument('--at', help='a window of --height at the markdown cell with this text, not the whole notebook')
    a = ap.parse_args()
    nb = Path(a.notebook).resolve()
    from playwright.sync_api import sync_playwright
    with lab(nb.parent) as port, sync_playwright() as p:
        b = browser(p)
        pg = b.new_page(viewport=dict(width=a.width, height=a.height))
        open_and_run(pg, port, nb.name)
        wait_run(pg, a.timeout)
        if a.at: scroll_to(pg, a.at)
        else: fit(pg)
        save(pg, a.out)
        b.close()
    print(a.out)


if __name__ == '__main__':
    main()
