"""The README's command that opens the course, ``make lab``, started for real and probed.

A module-scoped fixture starts JupyterLab through the very ``make lab`` target a learner types,
adding ``LAB_ARGS`` so that it listens on 127.0.0.1 only, on a free port, with a random token and
without opening a browser. ``-o .venv/.installed`` tells make not to reinstall even if
``requirements.txt`` looks newer than the install stamp; the recipe is otherwise unchanged. The
server runs in its own process group, which teardown always kills.

Then, over loopback only:
- ``/api/contents/`` lists every solved notebook ``notebooks/[0-9]*.ipynb`` and the ``exercises/``
  folder (holding a learner copy of each);
- each notebook (and its learner copy) opens through ``/api/contents/<name>?content=1`` as a valid
  nbformat-4 notebook with cells, and ``/lab/tree/<name>`` serves JupyterLab's HTML page;
- if Debian's ``chromium`` is installed, one headless run renders the first notebook inside the
  real JupyterLab app (its JavaScript does render headless here, so the nbconvert fallback is not
  needed) and writes both a screenshot and the DOM. The test checks the PNG (1280 x 900), that it
  is not blank and differs from what the same URL shows before the app has rendered (a white page,
  or the splash screen), and that the DOM holds the notebook's cells and its title. The screenshot
  is kept at ``build/lab_smoke/01_tokenization.png`` (``build/`` is git-ignored) for a human to look at.

Everything that starts JupyterLab is slow (it starts in a few seconds; chromium takes a few more),
so it is marked ``slow``: ``make test`` (CI) runs it, ``make test-lib`` leaves it out. One fast test
checks the recipe with ``make -n``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from lib.core.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
SCREENSHOT_DIR = REPO_ROOT / "build" / "lab_smoke"
START_TIMEOUT_S = 120  # JupyterLab usually answers within 5 s here; a loaded CI machine is slower
HTTP_TIMEOUT_S = 20
CHROMIUM_TIMEOUT_S = 120
WINDOW = (1280, 900)


@dataclass
class Lab:
    base: str  # http://127.0.0.1:<port>
    token: str
    log: Path

    def get(self, path: str, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, str, str]:
        """(status, content type, body) of a GET on the server, authenticated by the token header."""
        request = urllib.request.Request(self.base + path, headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8", "replace")

    def get_json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, f"GET {path}: HTTP {status}: {body[:500]}"
        return json.loads(body)

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else "(no log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM the process group (JupyterLab then shuts its kernels down), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def quiet_user_settings(settings_dir: Path) -> None:
    """JupyterLab settings for the test: never ask about (or fetch) news or updates."""
    target = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not (REPO_ROOT / ".venv" / "bin" / "jupyter").is_file():
        pytest.skip("no .venv with JupyterLab: run `make install` first")
    tmp = tmp_path_factory.mktemp("lab")
    quiet_user_settings(tmp / "settings")
    port, token = free_port(), secrets.token_hex(16)
    lab_args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # fail loudly rather than move to another port
        f"--ServerApp.token={token}",
        # Nothing may reach beyond loopback: no news or update checks, no PyPI extension manager.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        # Opening a notebook in the browser below need not start a kernel.
        "--LabApp.notebook_starts_kernel=False",
        # Keep the learner's own JupyterLab state out of it (and ours out of theirs).
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp / 'settings'}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
    log = tmp / "lab.log"
    command = ["make", "-o", ".venv/.installed", "lab", "LAB_ARGS=" + " ".join(lab_args)]
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # its own process group, so teardown reaches make's children too
        )
    server = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`make lab` exited with code {proc.returncode} before serving:\n{server.log_tail()}")
            try:
                status, _, body = server.get("/api/status", timeout=2)
                if status == 200 and "started" in json.loads(body):
                    break
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        try:  # best effort: shut down any kernel the browser may have started
            for kernel in server.get_json("/api/kernels"):
                request = urllib.request.Request(
                    f"{server.base}/api/kernels/{kernel['id']}", method="DELETE",
                    headers={"Authorization": f"token {token}"},
                )
                urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S).close()
        except Exception:
            pass
        kill_group(proc)


def test_make_lab_recipe_appends_lab_args():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "lab", "LAB_ARGS=--no-browser --ServerApp.port=1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, env=env, check=True,
    ).stdout.strip().splitlines()
    assert len(dry) == 1 and dry[0].startswith(".venv/bin/jupyter lab notebooks/"), dry
    assert dry[0].endswith("--no-browser --ServerApp.port=1")
    assert ("--allow-root" in dry[0]) == (os.geteuid() == 0)  # JupyterLab refuses root without it
    plain = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "lab"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=30, env=env, check=True,
    ).stdout.strip()
    assert "--no-browser" not in plain and "--ServerApp.port" not in plain  # the learner's default is untouched
    # and it opens on the landing page, with the notebooks folder as the file browser's root
    assert plain.split()[2:4] == ["notebooks/START_HERE.ipynb", "--ServerApp.root_dir=notebooks"], plain


@pytest.mark.slow
def test_make_lab_passes_the_extra_arguments_and_binds_loopback_only(lab):
    recipe = lab.log.read_text().splitlines()[0]  # make echoes the command it runs
    assert recipe.startswith(".venv/bin/jupyter lab notebooks/"), recipe
    assert "--ServerApp.ip=127.0.0.1" in recipe
    assert "-m venv" not in lab.log.read_text(), "make reinstalled the environment"
    status = lab.get_json("/api/status")
    assert "started" in status
    anonymous = urllib.request.Request(lab.base + "/api/contents/")
    with pytest.raises(urllib.error.HTTPError) as exc:  # the token is required
        urllib.request.urlopen(anonymous, timeout=HTTP_TIMEOUT_S)
    assert exc.value.code == 403


@pytest.mark.slow
def test_lab_lists_every_notebook_and_the_exercises_folder(lab):
    assert NOTEBOOKS, "no notebooks/[0-9]*.ipynb found"
    listing = lab.get_json("/api/contents/")
    entries = {item["name"]: item["type"] for item in listing["content"]}
    missing = [name for name in NOTEBOOKS if entries.get(name) != "notebook"]
    assert not missing, f"not listed by JupyterLab: {missing}; listed: {sorted(entries)}"
    assert entries.get("exercises") == "directory"
    learner = {item["name"] for item in lab.get_json("/api/contents/exercises")["content"]}
    assert set(NOTEBOOKS) <= learner, f"learner copies missing from exercises/: {set(NOTEBOOKS) - learner}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS + [f"exercises/{name}" for name in NOTEBOOKS])
def test_each_notebook_opens_through_the_server(lab, path):
    quoted = urllib.parse.quote(path)
    model = lab.get_json(f"/api/contents/{quoted}?content=1")
    assert model["type"] == "notebook" and model["format"] == "json"
    nb = nbformat.from_dict(model["content"])
    assert nb.nbformat == 4 and len(nb.cells) > 0
    nbformat.validate(nb)
    assert any(cell.cell_type == "code" for cell in nb.cells)

    status, content_type, body = lab.get(f"/lab/tree/{quoted}")
    assert status == 200 and content_type.startswith("text/html"), (status, content_type)
    assert 'id="jupyter-config-data"' in body  # JupyterLab's page, not an error page


def run_chromium(url: str, user_data_dir: Path, screenshot: Path, budget_ms: int | None) -> str:
    """One headless Chromium run: writes ``screenshot`` and returns the DOM it rendered."""
    command = [
        shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_data_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--hide-scrollbars", "--dump-dom", f"--screenshot={screenshot}",
    ]
    if budget_ms is not None:  # let the page's scripts run this long (virtual time) before capture
        command.append(f"--virtual-time-budget={budget_ms}")
    proc = subprocess.Popen(
        command + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        dom, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT_S} s on {url}")
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{err[-2000:]}"
    return dom


def load_rgb(path: Path):
    import numpy as np
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size == WINDOW, f"screenshot is {image.size}, expected {WINDOW}"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.slow
def test_headless_chromium_renders_a_notebook_in_jupyterlab(lab, tmp_path):
    """Screenshot of the first notebook rendered by the real JupyterLab app (no nbconvert fallback)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium): screenshot test skipped")
    name = NOTEBOOKS[0]
    url = f"{lab.base}/lab/tree/{urllib.parse.quote(name)}?token={lab.token}"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / f"{Path(name).stem}.png"
    before = SCREENSHOT_DIR / f"{Path(name).stem}_before_render.png"
    shot.unlink(missing_ok=True)

    # The reference: the same page captured as soon as it has loaded, before JupyterLab's
    # JavaScript has built the app (blank, or the splash screen at most).
    run_chromium(url, tmp_path / "profile-before", before, budget_ms=None)
    dom = run_chromium(url, tmp_path / "profile", shot, budget_ms=30_000)

    assert shot.is_file(), f"chromium wrote no screenshot at {shot}"
    pixels, reference = load_rgb(shot), load_rgb(before)
    inked = (pixels.min(axis=-1) < 200).mean()  # text, icons, borders: anything well off white
    changed = (abs(pixels - reference).max(axis=-1) > 30).mean()
    colours = len({tuple(p) for p in pixels[::4, ::4].reshape(-1, 3).tolist()})
    print(f"screenshot {shot}: {inked:.1%} inked pixels, {changed:.1%} differ from the unrendered page, {colours} colours")
    assert pixels.std() > 10, "the screenshot is blank"
    assert inked > 0.03 and colours > 50, "too little on screen for a rendered notebook"
    assert changed > 0.05, "the screenshot looks like the page before JupyterLab rendered it"

    # The DOM of that same run shows what was rendered: the notebook panel, its cells and its title.
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    title = next(c.source for c in nb.cells if c.cell_type == "markdown").splitlines()[0].lstrip("# ").strip()
    assert "jp-NotebookPanel" in dom and dom.count("jp-Cell ") >= 2, "JupyterLab did not render a notebook"
    assert title in dom, f"the notebook's title {title!r} is not on the rendered page"


# ------------------------------------------------------------------------------------------------
# A real browser drives an explorer: Selenium with Debian's chromium and chromium-driver (nothing is
# downloaded: both paths are given, so Selenium Manager never runs).
EXPLORER_CELL = (
    "from lib.core.data import load_tokenizer\n"
    "from lib.experiments.explorers import tokenizer_playground\n"
    "tokenizer_playground(load_tokenizer(), 'hello world')"
)


def _chrome_driver(tmp_path: Path):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver): "
                    "the real-browser explorer test is skipped")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome-profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


@pytest.mark.slow
def test_an_explorer_reacts_to_its_control_in_a_real_browser(lab, tmp_path):
    """JupyterLab (started by `make lab`), a kernel, the tokenizer playground's cell run with
    Shift+Enter in Chromium, its text box changed: the token count it shows must change."""
    driver = _chrome_driver(tmp_path)
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    name = f"_explorer_browser_test_{secrets.token_hex(4)}.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(EXPLORER_CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    headers = {"Authorization": f"token {lab.token}", "Content-Type": "application/json"}

    def api(method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(lab.base + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    api("PUT", f"/api/contents/{name}", {"type": "notebook", "format": "json", "content": nb})
    try:
        # A kernel for the notebook (the server is started with notebook_starts_kernel=False).
        api("POST", "/api/sessions", {"path": name, "type": "notebook", "name": name, "kernel": {"name": "python3"}})
        driver.get(f"{lab.base}/lab/tree/{urllib.parse.quote(name)}?token={lab.token}")
        # JupyterLab re-renders while it starts: elements found a moment ago may be replaced (stale)
        wait = WebDriverWait(driver, 120, ignored_exceptions=(StaleElementReferenceException,))
        # Only the visible notebook: JupyterLab may restore tabs an earlier test opened (the
        # screenshot test's notebook) behind this one, hidden, and a hidden cell is never clickable.
        panel = ".jp-NotebookPanel:not(.lm-mod-hidden)"
        kernel_name = f"{panel} .jp-NotebookPanel-toolbar .jp-Toolbar-kernelName"
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"{panel} .jp-Cell .cm-content")))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, kernel_name)
                   and "No Kernel" not in d.find_element(By.CSS_SELECTOR, kernel_name).text)

        label_css = f"{panel} .jp-OutputArea .explorer-caption"

        def cell_has_run(d) -> bool:
            # Shift+Enter sent while JupyterLab is still wiring the kernel can be lost (measured: the
            # cause of this test's timeouts), so send it again for as long as the cell was never queued.
            if "tokens for" in " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, label_css)):
                return True
            prompt = d.find_element(By.CSS_SELECTOR, f"{panel} .jp-Cell .jp-InputPrompt").text.strip()
            if prompt in ("", "[ ]:"):
                editor = d.find_element(By.CSS_SELECTOR, f"{panel} .jp-Cell .cm-content")
                editor.click()
                editor.send_keys(Keys.SHIFT, Keys.ENTER)
            return False

        WebDriverWait(driver, 120, poll_frequency=3, ignored_exceptions=(StaleElementReferenceException,)).until(cell_has_run)
        before = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, label_css))
        def type_text(d) -> bool:
            box = d.find_element(By.CSS_SELECTOR, f"{panel} .jp-OutputArea .widget-textarea textarea")
            box.click()
            box.send_keys(Keys.END, " and a much longer text that has many more tokens in it")
            return True

        wait.until(type_text)
        wait.until(lambda d: " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, label_css)) != before)
        after = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, label_css))
        print(f"explorer label before: {before!r}; after typing: {after!r}")
        n_before, n_after = int(before.split()[0]), int(after.split()[0])
        assert n_after > n_before, (before, after)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT_DIR / "explorer.png"))
    finally:
        driver.quit()
        try:
            for session in api("GET", "/api/sessions"):
                if session.get("path") == name:
                    api("DELETE", f"/api/sessions/{session['id']}")
        finally:
            api("DELETE", f"/api/contents/{name}")
