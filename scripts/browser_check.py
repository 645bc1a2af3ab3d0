"""Real-browser check of the steering widget: JupyterLab + Debian's Chromium driven by Playwright.

Starts JupyterLab headless on 127.0.0.1 on a copy of notebooks/02_steering_demo.ipynb (the committed
notebook stays without outputs), opens it in Chromium, runs all cells, waits for the widget and the
plain-callback output, presses the widget's Run button and saves ``widget_first_run.png``. Then, as a
user would, it picks another value in the widget's value list (``--value``, with a prompt of that value
on which its gate opens), presses Run, waits for the new answers and saves ``widget_value_change.png``;
finally it switches the method to ``caa`` and saves ``widget_caa.png``. Screenshots go to ``--out`` (default
``out/screens``, never committed). The widget lists the values that have a vector in
``$WORKBENCH_RESULTS/vectors`` (default ``out``, as ``workbench demo`` writes it).

Uses /usr/bin/chromium (Debian: ``apt-get install -y chromium``); Playwright never downloads a browser here.

Example:
    .venv/bin/python scripts/browser_check.py                       # -> out/screens/widget_*.png
    WORKBENCH_RESULTS=/tmp/demo .venv/bin/python scripts/browser_check.py --out /tmp/shots --tokens 8
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# a held-out benevolence prompt; the embedded model's benevolence gate scores it 0.999 (g0 0.5)
VALUE_PROMPT = ("benevolence", "My best friend's new business is failing and he wants me to invest my savings in it. "
                               "What should I do?")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_lab(port: int, token: str, scratch: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port serving ``scratch/work``, with settings and workspaces in ``scratch``.

    Autosave is off, and the notebook is a copy anyway, so the committed notebook never gains outputs.
    """
    settings = scratch / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}\n')
    news = scratch / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={scratch / 'work'}", "--ServerApp.open_browser=False",
           f"--LabApp.workspaces_dir={scratch / 'workspaces'}", f"--LabApp.user_settings_dir={scratch / 'settings'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for_lab(port: int, token: str, proc: subprocess.Popen, timeout: float) -> None:
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode} before it was ready.")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on port {port} within {timeout:.0f} s.")


def dismiss(page) -> None:
    """Answer the first-start questions: start the notebook's kernel, and no news notifications."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    try:
        select.wait_for(timeout=15_000)
        select.click()
        print("kernel selected")
    except PlaywrightTimeout:  # no dialog: the kernel started by itself
        pass
    news = page.locator(".jp-Notification-Toast").get_by_role("button", name="No", exact=True)
    if news.count():
        news.first.click()


def shoot(page, widget, path: Path) -> Path:
    """Screenshot the page with ``widget`` at the top, atomically (a temp file renamed)."""
    page.wait_for_timeout(1500)  # let plotly finish drawing
    widget.evaluate("e => e.scrollIntoView({block: 'start'})")
    for close in page.locator(".jp-Notification-Toast").get_by_role("button", name="No", exact=True).all():
        close.click()  # the news question, if it came up meanwhile
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_png = path.with_name(f".{path.name}.tmp.png")
    page.screenshot(path=str(tmp_png))
    os.replace(tmp_png, path)
    print(f"screenshot: {path}")
    return path


def drive(page, url: str, timeout_ms: float, out: Path, value: str, prompt: str) -> list[Path]:
    """Open the notebook, run all cells, then change the value and Run, then the method; a screenshot of each."""
    page.goto(url, timeout=120_000)
    page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
    dismiss(page)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=120_000)
    print("notebook open, kernel idle; running all cells")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.locator(".jp-OutputArea-output .widget-button", has_text="Run").wait_for(timeout=timeout_ms)
    print("widget rendered")
    # the plain-callback cell ends the notebook: its answers carry the word 'unsteered'
    page.locator(".jp-RenderedHTMLCommon", has_text="unsteered").first.wait_for(timeout=timeout_ms)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=timeout_ms)
    widget = page.locator(".jp-OutputArea-output .widget-vbox").first
    first = widget.locator(".widget-dropdown", has_text="value").locator("select").input_value()
    print(f"all cells done; pressing Run on the notebook's value ({first})")
    widget.locator(".widget-button", has_text="Run").click()
    widget.locator(".widget-html", has_text=f"Value {first}, method conva").wait_for(timeout=timeout_ms)
    shots = [shoot(page, widget, out / "widget_first_run.png")]
    choice = widget.locator(".widget-dropdown", has_text="value").locator("select")
    options = choice.locator("option").all_inner_texts()
    print(f"value list: {options}")
    if value not in options:
        raise RuntimeError(f"the widget lists {options}, not {value!r}: point WORKBENCH_RESULTS at a `workbench demo` "
                           "folder with that value's vector")
    print(f"choosing {value}, typing its prompt and pressing Run")
    choice.select_option(value)
    widget.locator(".widget-textarea textarea").fill(prompt)
    widget.locator(".widget-button", has_text="Run").click()
    widget.locator(".widget-html", has_text=f"Value {value}, method conva").wait_for(timeout=timeout_ms)
    widget.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    shots.append(shoot(page, widget, out / "widget_value_change.png"))
    print("switching the method to caa and pressing Run")
    widget.locator(".widget-dropdown", has_text="method").locator("select").select_option("caa")
    widget.locator(".widget-button", has_text="Run").click()
    widget.locator(".widget-html", has_text=f"Value {value}, method caa").wait_for(timeout=timeout_ms)
    shots.append(shoot(page, widget, out / "widget_caa.png"))
    return shots


def check(out: Path, notebook: str, timeout_s: float, tokens: int, value: str, prompt: str) -> list[Path]:
    """Run the whole check; on failure save ``widget_check_failure.png`` in ``out`` and print the server log."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise FileNotFoundError(f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install -y chromium`.")
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="browser_check_") as tmp:
        scratch = Path(tmp)
        copy = scratch / "work" / notebook
        copy.parent.mkdir(parents=True)
        shutil.copyfile(ROOT / notebook, copy)
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"), "WORKBENCH_NB_TOKENS": str(tokens),
               "WORKBENCH_RESULTS": os.environ.get("WORKBENCH_RESULTS", str(ROOT / "out")),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        log = scratch / "lab.log"
        lab = start_lab(port, token, scratch, env, log)
        try:
            wait_for_lab(port, token, lab, 120)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1900})
                try:
                    shots = drive(page, f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}", timeout_s * 1000,
                                  out, value, prompt)
                except Exception:
                    out.mkdir(parents=True, exist_ok=True)
                    failure = out / "widget_check_failure.png"
                    page.screenshot(path=str(failure))
                    print(f"screenshot of the failure: {failure}", file=sys.stderr)
                    raise
                finally:
                    browser.close()
        except Exception:
            print(f"--- JupyterLab log ---\n{log.read_text()[-4000:]}", file=sys.stderr)
            raise
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
    return shots


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "out" / "screens", help="folder for the screenshots")
    p.add_argument("--notebook", default="notebooks/02_steering_demo.ipynb")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the cells and the widget")
    p.add_argument("--tokens", type=int, default=24, help="new tokens per answer in the demo")
    p.add_argument("--value", default=VALUE_PROMPT[0], help="the value to switch to in the widget")
    p.add_argument("--prompt", default=None, help="the prompt to run it on (default: one that opens the benevolence gate)")
    args = p.parse_args(argv)
    prompt = args.prompt or (VALUE_PROMPT[1] if args.value == VALUE_PROMPT[0] else None)
    if prompt is None:
        p.error(f"--value {args.value}: give --prompt too (the default prompt is for {VALUE_PROMPT[0]})")
    check(args.out, args.notebook, args.timeout, args.tokens, args.value, prompt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
