"""The notebooks in a real browser: JupyterLab on 127.0.0.1, driven by Debian's headless Chromium.

For the quickstart and the theory notebook: open it, clear and run all cells, then move widgets the way
a reader would (drag a slider, tick a checkbox, pick from a dropdown, click "run") and check that the
output area or the figure actually changes. Fails on any Python traceback in a cell's output and on any
SEVERE entry in the browser console. Screenshots go to build/browser/ (look at them: layout problems
do not fail a test).

JupyterLab serves a temporary copy of the notebooks, so the browser never saves into notebooks/; the
copies still import the editable polca_nb, so their figures/, build/runs/ and .cache/llm/ are the
project's (as under nbval; the figures the run rewrites are put back afterwards). `make setup` installs chromium and chromium-driver through apt where it can;
elsewhere these tests skip with the reason. POLCA_CHROMIUM / POLCA_CHROMEDRIVER override the binaries.

tests/conftest.py moves these tests to the end of the session: after nbval has run the quickstart, its
LLM part is answered from the reply cache (seconds instead of minutes).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "browser"
NOTEBOOKS = ("00_quickstart.ipynb", "01_theory_convergence_under_noise.ipynb")
RUN_ALL_TIMEOUT_S = 1800  # cold, the quickstart's LLM part starts llama-server and computes every reply
WIDGET_TIMEOUT_S = 180

pytestmark = pytest.mark.slow


def _binary(env: str, name: str) -> str | None:
    path = os.environ.get(env) or shutil.which(name) or f"/usr/bin/{name}"
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


CHROMIUM = _binary("POLCA_CHROMIUM", "chromium")
CHROMEDRIVER = _binary("POLCA_CHROMEDRIVER", "chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    if CHROMIUM is None:
        return "no chromium (apt-get install chromium; `make setup` does it where apt-get is usable)"
    if CHROMEDRIVER is None:
        return "no chromedriver (apt-get install chromium-driver; `make setup` does it where apt-get is usable)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (the kernels are the server's), read from /proc."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


class Lab:
    """A running JupyterLab server on a temporary copy of the notebooks."""

    def __init__(self, workdir: Path):
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        notebooks = workdir / "notebooks"
        notebooks.mkdir()
        for name in NOTEBOOKS:
            shutil.copy2(ROOT / "notebooks" / name, notebooks / name)
        # A fresh Jupyter home: no user config, kernelspecs, workspaces or settings from this machine;
        # settings that keep JupyterLab from covering the notebook (news prompt) or detaching cells
        # that are scrolled out of view (windowing: the test reads every cell's DOM).
        settings = workdir / "settings"
        for plugin, values in {
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        }.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(workdir / "config"), JUPYTER_DATA_DIR=str(workdir / "data"),
                   JUPYTER_RUNTIME_DIR=str(workdir / "runtime"), PYTHONHASHSEED="0",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.log_path = SHOTS / "jupyterlab.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--expose-app-in-browser",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={notebooks}",
             f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workdir / 'workspaces'}"],
            cwd=notebooks, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            _wait_for("JupyterLab's /api", self._answers, 120)
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {self.process.returncode}: see {self.log_path}")
        try:
            with urllib.request.urlopen(f"{self.url}/api", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def _api(self, method: str, path: str) -> None:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        """Shut down the kernels and the server; kill whatever is left."""
        kernels = _children(self.process.pid)
        if self.process.poll() is None:
            try:
                self._api("POST", "/api/shutdown")  # stops every kernel, then the server
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in kernels:  # kernels run in their own sessions, outside the server's process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    reason = _missing()
    if reason:
        pytest.skip(f"browser test skipped: {reason}")
    # The notebooks write their figures into the project's figures/ (tracked): put back what was there.
    figures = {path: path.read_bytes() for path in (ROOT / "figures").glob("*.png")}
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()
    for path, content in figures.items():
        if path.is_file() and path.read_bytes() != content:
            path.write_bytes(content)


@pytest.fixture(scope="module")
def browser(lab) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(SHOTS / "chromedriver.log")),
                              options=options)
    driver.set_script_timeout(30)
    driver.console = []  # every console entry read so far
    yield driver
    driver.quit()


# --- JupyterLab, through the app object that --expose-app-in-browser puts on window -----------------

_PANEL = """
const app = window.jupyterapp;
const panel = app && app.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext || panel.context.path !== arguments[0]) return null;
"""

_STATE = _PANEL + """
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const code = panel.content.widgets.filter(c => c.model.type === 'code');
const errors = [];
let pending = 0;
for (const cell of code) {
  const prompt = cell.node.querySelector('.jp-InputPrompt');
  if (cell.model.executionCount === null || (prompt && prompt.textContent.includes('*'))) pending += 1;
  for (const out of cell.model.outputs.toJSON()) {
    if (out.output_type === 'error') errors.push(out.ename + ': ' + out.evalue);
  }
}
return {ready: panel.context.isReady, kernel: kernel ? kernel.status : null, cells: code.length, pending, errors};
"""

_CELL = _PANEL + """
const cell = panel.content.widgets.find(c => c.model.sharedModel.getSource().includes(arguments[1]));
if (cell) cell.node.scrollIntoView({block: 'start'});
return cell ? cell.node : null;
"""

_TRACEBACKS = """
return Array.from(document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'))
  .map(e => e.textContent).filter(t => t.includes('Traceback'));
"""


def _state(driver, name: str) -> dict | None:
    return driver.execute_script(_STATE, name)


def _idle(driver, name: str) -> dict | None:
    state = _state(driver, name)
    return state if state and state["ready"] and state["kernel"] == "idle" else None


def _command(driver, command: str) -> None:
    driver.execute_script("window.jupyterapp.commands.execute(arguments[0]); return true;", command)


def _dismiss_dialogs(driver, seen: list[str]) -> None:
    from selenium.webdriver.common.by import By

    for dialog in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
        seen.append(dialog.text.replace("\n", " | "))
        buttons = dialog.find_elements(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept")
        if buttons:
            buttons[0].click()


def _console(driver) -> list[dict]:
    entries = driver.get_log("browser")
    driver.console.extend(entries)
    return entries


def _shoot(driver, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _shoot_pages(driver, stem: str) -> list[Path]:
    """Screenshots of the whole notebook, one viewport at a time (the first is `<stem>.png`)."""
    scroller = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer"
    driver.execute_script(f"document.querySelector('{scroller}').scrollTop = 0;")
    paths = [_shoot(driver, stem)]
    for page in range(2, 40):
        moved = driver.execute_script(f"""
            const s = document.querySelector('{scroller}');
            const before = s.scrollTop; s.scrollTop = before + s.clientHeight * 0.9;
            return s.scrollTop > before;""")
        if not moved:
            break
        time.sleep(0.3)
        paths.append(_shoot(driver, f"{stem}-{page:02d}"))
    return paths


def _open_and_run_all(driver, lab: Lab, name: str) -> dict:
    """Open `name`, clear its saved outputs, run all cells; the final state, screenshots taken."""
    stem = Path(name).stem
    for stale in SHOTS.glob(f"{stem}-*.png"):  # an earlier run's pages would mix with this one's
        stale.unlink()
    dialogs: list[str] = []
    driver.get(f"{lab.url}/lab/tree/{name}?token={lab.token}")

    def opened():
        _dismiss_dialogs(driver, dialogs)
        return _idle(driver, name)

    _wait_for(f"{name} open with an idle kernel", opened, 180)
    driver.execute_script("window.jupyterapp.shell.collapseLeft(); return true;")
    _command(driver, "notebook:clear-all-cell-outputs")
    cleared = _wait_for("cleared outputs", lambda: (s := _state(driver, name)) and s["pending"] == s["cells"] and s, 30)
    assert cleared["cells"] > 0
    started = time.monotonic()
    _command(driver, "notebook:run-all-cells")

    def finished():
        _dismiss_dialogs(driver, dialogs)
        state = _idle(driver, name)
        if state and state["errors"]:
            raise AssertionError(f"{name}: a cell raised {state['errors']}")
        return state if state and state["pending"] == 0 else None

    state = _wait_for(f"all cells of {name} to run", finished, RUN_ALL_TIMEOUT_S, interval_s=1.0)
    print(f"\n{name}: {state['cells']} code cells ran in {time.monotonic() - started:.0f} s; dialogs: {dialogs}")
    pages = _shoot_pages(driver, f"{stem}-ran")
    print(f"  screenshots: {pages[0]} (+{len(pages) - 1} pages)")
    return state


def _widget(cell, kind: str, description: str):
    """The ipywidget of CSS class `kind` (e.g. widget-slider) whose label reads `description`."""
    from selenium.webdriver.common.by import By

    for element in cell.find_elements(By.CSS_SELECTOR, f".{kind}"):
        # A checkbox shows its description next to the box (.widget-label-basic), the others to the left.
        labels = element.find_elements(By.CSS_SELECTOR, ".widget-label, .widget-label-basic")
        if any(_text(label) == description for label in labels):
            return element
    raise AssertionError(f"no {kind} labelled {description!r} in the cell")


def _drag_slider(driver, slider, fraction: float) -> str:
    """Drag the slider's handle by `fraction` of its track (as a mouse would); the new readout."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    readout = slider.find_element(By.CSS_SELECTOR, ".widget-readout")
    before = readout.get_attribute("textContent")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
    track = slider.find_element(By.CSS_SELECTOR, ".noUi-target")
    handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
    ActionChains(driver).click_and_hold(handle).move_by_offset(int(fraction * track.size["width"]), 0) \
        .release().perform()
    return _wait_for("the slider readout to change", lambda: (t := readout.get_attribute("textContent")) != before
                     and t, 10)


def _text(element) -> str:
    return element.get_attribute("textContent").strip()


def _assert_clean(driver, name: str) -> None:
    tracebacks = driver.execute_script(_TRACEBACKS)
    assert not tracebacks, f"{name}: tracebacks in cell outputs:\n" + "\n---\n".join(tracebacks)
    _console(driver)
    severe = [e for e in driver.console if e["level"] == "SEVERE"]  # no filter: JupyterLab 4.6 logs none
    print(f"  console so far: {len(driver.console)} entries, "
          f"levels {sorted({e['level'] for e in driver.console})}")
    for entry in driver.console:
        print(f"    [{entry['level']}] {entry['message'][:300]}")
    assert not severe, f"{name}: browser console errors: {[e['message'] for e in severe]}"


def test_quickstart_runs_and_its_knob_panel_reruns(lab, browser):
    from selenium.webdriver.common.by import By

    name = NOTEBOOKS[0]
    _open_and_run_all(browser, lab, name)
    _console(browser)
    # The live dashboard of the scripted run ends as finished (a run stops a few calls short of its budget:
    # that must not read as a failure), and no progress bar anywhere is red.
    run_cell = browser.execute_script(_CELL, name, "result = polca(problem, ScriptedProposer(), config")
    assert run_cell is not None, "no scripted-run cell in the quickstart"
    board = " ".join(_text(e) for e in run_cell.find_elements(By.CSS_SELECTOR, ".widget-html"))
    assert "stopped by max_metric_calls" in board and "best mean" in board, f"dashboard shows {board!r}"
    red = browser.find_elements(By.CSS_SELECTOR, ".progress-bar-danger")
    assert not red, f"{len(red)} red progress bars"
    lineage = browser.execute_script(_CELL, name, "show_lineage(result")
    assert lineage is not None and "rejected" in _text(lineage), "the lineage view is missing or empty"
    cell = browser.execute_script(_CELL, name, "KnobPanel.for_config(")
    assert cell is not None, "no KnobPanel cell in the quickstart"
    output = cell.find_element(By.CSS_SELECTOR, ".widget-output")
    first = _text(output)
    assert "best true score" in first, f"the panel's first run printed {first!r}"

    eps = _drag_slider(browser, _widget(cell, "widget-slider", "ε"), -0.4)
    _shoot(browser, f"{Path(name).stem}-after-eps")
    checkbox = _widget(cell, "widget-checkbox", "summarizer").find_element(By.CSS_SELECTOR, "input")
    was = checkbox.is_selected()
    checkbox.click()
    _wait_for("the checkbox to toggle", lambda: checkbox.is_selected() != was, 10)
    _shoot(browser, f"{Path(name).stem}-after-summarizer")
    button = next(b for b in cell.find_elements(By.CSS_SELECTOR, "button.widget-button") if _text(b) == "run")
    button.click()
    second = _wait_for("the panel's output to change after 'run'",
                       lambda: _idle(browser, name) and (t := _text(output)) != first and "best true score" in t
                       and t, WIDGET_TIMEOUT_S)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", output)
    _shoot(browser, f"{Path(name).stem}-after-run")
    print(f"  panel: {first!r} -> (eps={eps}, summarizer={not was}) {second!r}")
    _assert_clean(browser, name)


def test_theory_notebook_runs_and_its_explorer_redraws(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    name = NOTEBOOKS[1]
    _open_and_run_all(browser, lab, name)
    cell = browser.execute_script(_CELL, name, "interactive_output(redraw")
    assert cell is not None, "no explorer cell in the theory notebook"

    def figure() -> str | None:
        images = cell.find_elements(By.CSS_SELECTOR, ".widget-output img")
        return images[0].get_attribute("src") if images else None

    def redrawn(before: str) -> Callable[[], Any]:
        return lambda: _idle(browser, name) and (src := figure()) and src != before and src

    shown = _wait_for("the explorer's first figure", figure, 30)
    width = Select(_widget(cell, "widget-dropdown", "UCB width").find_element(By.CSS_SELECTOR, "select"))
    assert width.first_selected_option.text == "sub-Gaussian", "the UCB width dropdown starts empty"
    moves = {
        "sigma": lambda: _drag_slider(browser, _widget(cell, "widget-slider", "σ"), 0.3),
        "eps": lambda: _drag_slider(browser, _widget(cell, "widget-slider", "ε"), 0.3),
        "ucb-width": lambda: Select(_widget(cell, "widget-dropdown", "UCB width").find_element(
            By.CSS_SELECTOR, "select")).select_by_visible_text("c = 0.3") or "c = 0.3",
    }
    for widget, move in moves.items():
        value = move()
        started = time.monotonic()
        shown = _wait_for(f"the figure to redraw after moving {widget}", redrawn(shown), WIDGET_TIMEOUT_S)
        print(f"  {widget} -> {value}: redrawn in {time.monotonic() - started:.1f} s")
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", cell)
        _shoot(browser, f"{Path(name).stem}-after-{widget}")
    _assert_clean(browser, name)
