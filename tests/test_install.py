"""The install story: the lock agrees with pyproject.toml, the wheel carries the data, the data
folder is found (or a clear error says how to get it), and the Makefile's install recipe has the
switches the README documents. Offline: the wheel is built without build isolation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from lib.core import data, paths

ROOT = paths.REPO_ROOT
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = (ROOT / "requirements.txt").read_text()


def _lock_pins() -> dict[str, list[tuple[Version, str]]]:
    pins: dict[str, list[tuple[Version, str]]] = {}
    for line in LOCK.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;]+)\s*(?:;\s*(.*))?$", line)
        if m:
            pins.setdefault(m[1].lower().replace("_", "-"), []).append((Version(m[2]), m[3] or ""))
    return pins


def _direct_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_lock_pins_every_direct_dependency_within_its_range(python):
    """For each Python the README names, every direct dependency has exactly one pin that applies
    there, and that pin lies in pyproject's range."""
    pins = _lock_pins()
    env = {"python_version": python, "python_full_version": python + ".0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}
    for req in _direct_requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.txt: run `make lock`"
        applying = [v for v, marker in pins[name] if not marker or Marker(marker).evaluate(env)]
        assert len(applying) == 1, f"{name}: {len(applying)} pins apply on Python {python}"
        assert req.specifier.contains(applying[0], prereleases=True), f"{name}=={applying[0]} is outside {req.specifier}"


def test_lock_was_made_by_the_documented_command():
    makefile = (ROOT / "Makefile").read_text()
    command = re.search(r"^#\s+(uv pip compile .*)$", LOCK, re.M)[1]
    assert command in makefile, "the lock's header command differs from the Makefile's `lock` target"
    assert "--universal" in command


def test_requires_python_matches_the_tested_versions():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    classifiers = PYPROJECT["project"]["classifiers"]
    assert {c.rsplit(":: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")} == {"3.11", "3.12", "3.13"}
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11" in readme and "3.10+" not in readme


def test_licence_and_citation_exist():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version:" in citation and "title:" in citation


# ------------------------------------------------------------------ data folder
def test_data_dir_candidates_order(tmp_path):
    assert paths.data_dir_candidates({}) == [ROOT / "data", paths.PACKAGE_DIR / "course_data"]
    assert paths.data_dir_candidates({"COURSE_DATA_DIR": str(tmp_path)})[0] == tmp_path
    assert paths.data_dir_candidates({"COURSE_DATA_DIR": "  "})[0] == ROOT / "data"
    with pytest.raises(TypeError, match="env"):
        paths.data_dir_candidates(["COURSE_DATA_DIR"])


def test_find_data_dir_prefers_an_override_that_holds_the_corpus(tmp_path):
    assert paths.find_data_dir({}) == ROOT / "data"  # the clone
    empty = tmp_path / "empty"
    empty.mkdir()
    assert paths.find_data_dir({"COURSE_DATA_DIR": str(empty)}) == ROOT / "data"  # falls through to the clone
    (tmp_path / paths.CORPUS_NAME).write_text("to be")
    assert paths.find_data_dir({"COURSE_DATA_DIR": str(tmp_path)}) == tmp_path
    with pytest.raises(TypeError, match="env"):
        paths.find_data_dir("COURSE_DATA_DIR")


def test_require_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer not found at .*git clone.*COURSE_DATA_DIR"):
        paths.require_file(tmp_path / "tokenizer.json", "tokenizer")
    (tmp_path / "x").write_text("1")
    assert paths.require_file(tmp_path / "x", "x") == tmp_path / "x"
    with pytest.raises(TypeError, match="path"):
        paths.require_file(None, "x")
    with pytest.raises(TypeError, match="what"):
        paths.require_file(tmp_path / "x", "")


def test_load_tokenizer_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="the course tokenizer not found at .*make install"):
        data.load_tokenizer(tmp_path / "tokenizer.json")
    assert data.load_tokenizer().vocab_size == 2048


def test_installed_copy_without_data_fails_clearly(tmp_path):
    """`lib` copied alone (no data/ beside it, no course_data/ inside): importing works and the
    first read fails with the fix in the message."""
    shutil.copytree(ROOT / "lib", tmp_path / "lib", ignore=shutil.ignore_patterns("__pycache__", "course_data"))
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_DATA_DIR", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, "-c", "import lib.core.data; lib.core.data.load_tokenizer()"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "FileNotFoundError" in result.stderr and "pip install ." in result.stderr, result.stderr[-800:]


def test_wheel_carries_the_data_but_not_the_results(tmp_path):
    pytest.importorskip("setuptools")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("beyond_next_token-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("tinyshakespeare.txt", "tokenizer.json", "tiny_shakespeare_gpt.safetensors", "graph_reach_dense.safetensors"):
        assert f"lib/course_data/{f}" in names
    assert "lib/experiments/pretrained.py" in names and "lib/exercises/learner.py" in names
    assert not any(n.startswith("lib/course_data/results") or n.endswith(".json") and "results" in n for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names)


# ------------------------------------------------------------------ the Makefile's install recipe
def _dry_run(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-n", "-B", "install", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env, check=True).stdout


def test_install_recipe_has_the_documented_switches(tmp_path):
    recipe = _dry_run(f"VENV={tmp_path / 'venv'}")
    assert "https://download.pytorch.org/whl/cpu" in recipe  # the CPU-only index is tried first...
    assert "could not be reached: PyPI" in recipe  # ...with a fallback to PyPI
    assert "pip install --quiet uv" in recipe and "uv pip install" in recipe  # uv when installable
    assert "requirements.txt" in recipe and "nvidia-" in recipe  # the lock, minus torch's CUDA wheels
    assert 'mode="cuda"' in _dry_run(f"VENV={tmp_path / 'venv'}", "TORCH=cuda")
    assert '[ "pip" != pip ]' in _dry_run(f"VENV={tmp_path / 'venv'}", "INSTALLER=pip")


# ------------------------------------------------------------------ CI, Binder and Colab
CUDA_ONLY = re.search(r"^CUDA_ONLY := (.+)$", (ROOT / "Makefile").read_text(), re.M)[1]


def test_the_lock_without_cuda_packages_keeps_everything_but_torch():
    """The Makefile (and binder/postBuild) install torch first, then the lock minus the lines that
    only PyPI's CUDA torch needs: that filter must drop torch and the NVIDIA/CUDA/triton wheels and
    nothing a direct dependency names."""
    assert re.search(r"^torch==[0-9][^ ;]*", LOCK, re.M), "the Makefile reads torch's version from its pin"
    kept = [line for line in LOCK.splitlines() if re.match(r"^[A-Za-z0-9]", line) and not re.match(CUDA_ONLY, line)]
    names = {re.match(r"^([A-Za-z0-9_.-]+)==", line)[1].lower() for line in kept}
    assert not any(n.startswith(("nvidia-", "cuda-")) or n in ("torch", "triton") for n in names)
    direct = {r.name.lower().replace("_", "-") for r in _direct_requirements()} - {"torch"}
    assert direct <= names


def test_binder_installs_the_lock_with_a_cpu_torch():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK) and os.access(ROOT / "binder" / "start", os.X_OK)
    assert CUDA_ONLY in post_build  # the same filter as the Makefile
    assert "download.pytorch.org/whl/cpu" in post_build and "-r requirements.txt" not in post_build
    assert "requirements.txt" in post_build and "--no-deps -e ." in post_build
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    start = (ROOT / "binder" / "start").read_text()
    for name in ("OMP_NUM_THREADS=2", "ATEN_CPU_CAPABILITY=avx2", "MKL_CBWR=AVX2", "ONEDNN_MAX_CPU_ISA=AVX2"):
        assert name in start and name.split("=")[0] in (ROOT / "Makefile").read_text()
    for script in ("postBuild", "start"):
        subprocess.run(["bash", "-n", str(ROOT / "binder" / script)], check=True)


def test_ci_runs_two_pythons_and_installs_the_browser():
    ci = (ROOT / ".ci" / "run").read_text()
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)
    assert "apt-get install -y -qq chromium chromium-driver" in ci
    assert re.search(r'make test PYTHON="\$oldest"', ci) and re.search(r'make test-lib PYTHON="\$newest" VENV=\.venv-py3\.13', ci)
    assert "find_python 3.11" in ci and "find_python 3.13" in ci


def test_the_colab_cell_is_valid_and_keeps_colabs_stack():
    """The README's Colab cell parses as IPython, clones, and installs the course with its ranges
    (not the lock, which pins torch and the kernel's packages)."""
    from IPython.core.inputtransformer2 import TransformerManager

    readme = (ROOT / "README.md").read_text()
    cell = re.search(r"\*\*Google Colab\.\*\*.*?```python\n(.*?)```", readme, re.S)[1]
    compile(TransformerManager().transform_cell(cell), "colab-cell", "exec")
    assert "git clone" in cell and "pip install -q /content/course" in cell
    assert "requirements.txt" not in cell and "torch" not in cell.replace("numpy or torch", "")
    base = PYPROJECT["project"]["dependencies"]
    assert not any(Requirement(r).name in ("ipykernel", "jupyterlab", "notebook", "ipython") for r in base)
    for req in map(Requirement, base):  # ranges, so that whatever torch / numpy Colab has can stay
        if req.name in ("torch", "numpy"):
            assert req.specifier and not any(s.operator in ("==", "===", "~=") for s in req.specifier)
