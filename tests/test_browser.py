"""Notebooks 01 and 02 in a real browser: JupyterLab, headless Chromium, Run All Cells, a slider.

The test starts its own JupyterLab on a free loopback port with a token, in a temporary
folder holding smoke copies of notebooks 01 and 02 (`tools/prepare_smoke_notebooks.py`),
and drives Debian's Chromium (`/usr/bin/chromium`) with Playwright. For each notebook it
runs all cells from the Run menu, waits for the kernel to go idle, and requires every
code cell to have run and no cell to show an error. In notebook 02 it then moves the
`sep_conv_3x3` alpha slider with the arrow keys and requires the printed softmax weight
and the parsed op to follow. Screenshots go to build/browser_01.png and build/browser_02.png.

Playwright never downloads a browser here. Without /usr/bin/chromium or the playwright
package the test is skipped, saying which is missing.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tool_modules import load_tool

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NOTEBOOKS = ["01_features", "02_mixed_op_relaxation"]
RUN_TIMEOUT_S = 600  # Run All Cells of one smoke notebook, on a busy 2-core machine
SLIDER_OP = "sep_conv_3x3"
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show (other tabs are hidden panels)

pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)", allow_module_level=True)
try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError as error:
    pytest.skip(f"playwright is not importable ({error}); pip install playwright", allow_module_level=True)

prepare_smoke = load_tool("prepare_smoke_notebooks")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """Lab settings for a test: no news or update check (no network, no toast), and every
    cell attached to the page, so that all prompts and outputs can be read."""
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over smoke copies of 01 and 02: (base URL, token, root, log path)."""
    base = tmp_path_factory.mktemp("browser")
    root = base / "root"
    prepare_smoke.write_smoke_notebooks(root, only=NOTEBOOKS)
    _write_settings(base / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline figures, as a user sees them
    env.update(JUPYTERLAB_SETTINGS_DIR=str(base / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    log_path = base / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
               f"--ServerApp.root_dir={root}"] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI containers
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {url} within 180 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url, token, root, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as error:
            pytest.fail(f"Chromium at {CHROMIUM} did not start under Playwright: {error}")
        yield chromium
        chromium.close()


def _page_text(page, limit: int = 3000) -> str:
    try:
        return page.inner_text("body")[-limit:]
    except PlaywrightError as error:
        return f"(page text unavailable: {error})"


def _open_notebook(browser, lab, name: str):
    """A page showing notebook `name` with its kernel idle."""
    url, token, _root, log_path = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(f"{url}/lab/tree/{name}.ipynb?reset&token={token}", wait_until="domcontentloaded")  # no old tabs
    try:
        page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for(state="visible", timeout=180_000)
        page.locator(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            state="attached", timeout=180_000)
    except PlaywrightTimeout:
        pytest.fail(f"{name} did not open with an idle kernel; page text:\n{_page_text(page)}\n"
                    f"server log:\n{log_path.read_text()[-3000:]}")
    return page


def _run_all(page, name: str) -> None:
    """Run menu -> Run All Cells, then wait until the kernel is idle and no cell is queued.

    A Run All issued while the kernel is still connecting passes over the cells without
    running them, so it is issued again until a cell is seen queued or every cell has run."""
    notebook = page.locator(NOTEBOOK).first
    started = (f"() => {{ const p = [...document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputArea-prompt')];"
               " return p.length > 0 && (p.some(e => e.textContent.includes('*'))"
               " || p.every(e => /\\[\\d+\\]/.test(e.textContent))); }")
    for _ in range(4):
        page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first.wait_for(timeout=180_000)
        notebook.locator(".jp-Cell").first.click()  # focus the notebook, so the Run menu acts on it
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(started, timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    else:
        pytest.fail(f"{name}: Run All Cells ran no cell in 4 tries; page text:\n{_page_text(page)}")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    idle_since = None
    while True:
        prompts = notebook.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        status = notebook.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
        if status == "idle" and not any("*" in p for p in prompts):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 2:
                return
        else:
            idle_since = None
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: cells still running after {RUN_TIMEOUT_S} s (kernel {status}, prompts "
                        f"{prompts}); page text:\n{_page_text(page)}")
        time.sleep(0.5)


def _check_no_errors(page, name: str) -> int:
    """Every code cell ran (a numbered prompt) and no output is an error; the number of code cells."""
    notebook = page.locator(NOTEBOOK).first
    stderr = notebook.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    errors = [text for text in stderr.all_inner_texts() if "Traceback" in text]
    assert not errors, f"{name}: a cell errored:\n" + "\n---\n".join(e[-2000:] for e in errors)
    prompts = notebook.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    unrun = [i for i, p in enumerate(prompts) if not re.search(r"\[\d+\]", p)]
    assert prompts and not unrun, f"{name}: code cells {unrun} of {len(prompts)} did not run (prompts {prompts})"
    return len(prompts)


def _screenshot(page, name: str) -> Path:
    path = ROOT / "build" / f"browser_{name[:2]}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path))
    return path


def test_01_runs_in_jupyterlab(browser, lab):
    page = _open_notebook(browser, lab, "01_features")
    _run_all(page, "01_features")
    assert _check_no_errors(page, "01_features") >= 5
    assert "spk01 spk02" in page.locator(NOTEBOOK).first.inner_text()
    _screenshot(page, "01_features")
    page.close()


def _slider_readout(cell) -> tuple[str, dict[str, float], str]:
    """The first printed argmax op, softmax weights and parsed cell in `cell`'s outputs: the
    sliders' panel once a slider has moved (it sits above the initial, all-zero drawing)."""
    text = cell.locator(".jp-Cell-outputWrapper").inner_text()
    weights = re.findall(r"softmax weights: (.+)", text)
    parsed = re.findall(r"parsed 2-node cell: (.+)", text)
    argmax = re.findall(r"argmax op \(eq. 3\): (\S+)", text)
    assert weights and parsed and argmax, f"the slider cell printed no weights or genotype:\n{text[-2000:]}"
    return argmax[0], {op: float(w) for op, w in re.findall(r"(\w+) ([0-9.]+)", weights[0])}, parsed[0]


def test_02_runs_and_its_alpha_slider_moves_the_weights_and_the_parsed_op(browser, lab):
    name = "02_mixed_op_relaxation"
    page = _open_notebook(browser, lab, name)
    _run_all(page, name)
    _check_no_errors(page, name)
    source = page.locator(".jp-InputArea", has_text="widgets.FloatSlider")
    cell = page.locator(f"{NOTEBOOK} .jp-CodeCell", has=source).first
    argmax0, weights0, parsed0 = _slider_readout(cell)
    assert argmax0 == "none" and abs(weights0[SLIDER_OP] - 1 / len(weights0)) < 1e-3, (argmax0, weights0)  # α = 0

    slider = cell.locator(".widget-hslider", has=page.locator(".widget-label", has_text=SLIDER_OP)).first
    try:
        slider.wait_for(state="visible", timeout=60_000)
    except PlaywrightTimeout:
        pytest.fail(f"no {SLIDER_OP} slider rendered (ipywidgets); cell text:\n{cell.inner_text()[-2000:]}")
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(8):  # step 0.25: alpha 0 -> 2
        handle.press("ArrowRight")
    readout = slider.locator(".widget-readout")
    try:
        readout.filter(has_text="2.00").wait_for(timeout=30_000)
    except PlaywrightTimeout:
        pytest.fail(f"the {SLIDER_OP} slider did not reach 2.00 under the arrow keys: readout {readout.inner_text()!r}")
    # Eight redraws were queued, one per key; the last one shows softmax with alpha = 2 on one op of n.
    n = len(weights0)
    expected = f"{SLIDER_OP} {math.exp(2) / (n - 1 + math.exp(2)):.3f}"
    try:
        page.wait_for_function("([cell, expected]) => cell.querySelector('.jp-Cell-outputWrapper').innerText"
                               ".includes(expected)", arg=[cell.element_handle(), expected], timeout=60_000)
    except PlaywrightTimeout:
        pytest.fail(f"moving the {SLIDER_OP} slider to 2.00 did not show the weight {expected!r}; cell output:\n"
                    f"{cell.locator('.jp-Cell-outputWrapper').inner_text()[-2000:]}")
    argmax1, weights1, parsed1 = _slider_readout(cell)
    assert f"{SLIDER_OP} {weights1[SLIDER_OP]:.3f}" == expected and weights1["none"] < weights0["none"], weights1
    assert argmax1 == SLIDER_OP and parsed1 != parsed0 and SLIDER_OP in parsed1, (argmax1, parsed0, parsed1)
    cell.locator(".widget-vbox").first.evaluate("e => e.scrollIntoView({block: 'start'})")  # sliders and panel
    page.wait_for_timeout(500)
    shot = _screenshot(page, name)
    assert shot.stat().st_size > 10_000
    page.close()
