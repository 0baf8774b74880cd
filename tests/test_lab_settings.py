"""`make lab` opens JupyterLab without the "get notified about official Jupyter news?" pop-up.

JupyterLab 4 asks that question on first start whenever its `fetchNews` setting
(`@jupyterlab/apputils-extension:notification`) is still at its default, "none" (ask); a command-line
flag such as `--LabApp.news_url=None` stops the fetching but not the question. The course changes
the *defaults* of `fetchNews` (to "false") and `checkForUpdates` (to false) with a settings-override
file in the clone, docs/jupyter/labconfig/default_setting_overrides.json, which the Makefile's `lab`
target puts on JUPYTER_CONFIG_PATH: offline, from a clean clone, without touching the learner's own
settings (which still win).

Checked here without starting JupyterLab: that `make lab` hands JupyterLab that path (make runs a
stand-in `jupyter` that reports its environment), and that JupyterLab's own settings code, reading
through that path, serves the changed defaults for the installed JupyterLab's schema.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "docs" / "jupyter"
OVERRIDES = CONFIG_DIR / "labconfig" / "default_setting_overrides.json"
PLUGIN = "@jupyterlab/apputils-extension:notification"


def test_the_override_file_turns_news_and_update_checks_off():
    overrides = json.loads(OVERRIDES.read_text(encoding="utf-8"))
    assert overrides == {PLUGIN: {"fetchNews": "false", "checkForUpdates": False}}


def make_lab_environment(tmp_path: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment and arguments `make lab` gives JupyterLab (a stand-in `jupyter` records them)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    report = tmp_path / "report.json"
    jupyter = fake_bin / "jupyter"
    jupyter.write_text(
        "#!/bin/sh\n"
        f"exec \"{sys.executable}\" -c 'import json, os, sys; "
        f"json.dump({{\"env\": dict(os.environ), \"argv\": sys.argv[1:]}}, open(\"{report}\", \"w\"))' \"$@\"\n"
    )
    jupyter.chmod(jupyter.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "JUPYTER_CONFIG_PATH")}
    env.update(extra_env or {})
    # -o: treat the environment as installed (never install here); BIN: run the stand-in instead.
    subprocess.run(["make", "-s", "-o", ".venv/.installed", "lab", f"BIN={fake_bin}"], cwd=REPO_ROOT, env=env,
                   check=True, timeout=60, capture_output=True)
    return json.loads(report.read_text())


def test_make_lab_puts_the_course_settings_on_the_jupyter_config_path(tmp_path):
    seen = make_lab_environment(tmp_path)
    assert seen["argv"][:2] == ["lab", "notebooks/START_HERE.ipynb"]
    paths = seen["env"]["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert Path(paths[0]).resolve() == CONFIG_DIR.resolve()


def test_make_lab_keeps_a_jupyter_config_path_the_shell_set(tmp_path):
    seen = make_lab_environment(tmp_path, {"JUPYTER_CONFIG_PATH": "/somewhere/else"})
    paths = seen["env"]["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert Path(paths[0]).resolve() == CONFIG_DIR.resolve() and paths[1:] == ["/somewhere/else"]


def test_jupyterlab_reads_the_changed_defaults(tmp_path, monkeypatch):
    settings_utils = pytest.importorskip("jupyterlab_server.settings_utils")
    commands = pytest.importorskip("jupyterlab.commands")
    schemas_dir = Path(commands.get_app_dir()) / "schemas"
    if not (schemas_dir / "@jupyterlab" / "apputils-extension" / "notification.json").is_file():
        pytest.skip(f"no JupyterLab schemas in {schemas_dir}")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(CONFIG_DIR))
    result, _warnings = settings_utils.get_settings(
        str(tmp_path / "app-settings"), str(schemas_dir), str(tmp_path / "user-settings"), schema_name=PLUGIN,
    )
    properties = result["schema"]["properties"]
    # The keys still exist in this JupyterLab (a rename would silently bring the pop-up back) ...
    assert {"fetchNews", "checkForUpdates"} <= set(properties)
    # ... and the defaults JupyterLab serves are the course's: never ask, never fetch.
    assert properties["fetchNews"]["default"] == "false"
    assert properties["checkForUpdates"]["default"] is False
