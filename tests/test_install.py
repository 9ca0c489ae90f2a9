"""Installing the toolkit beside another distribution named ``datasets`` leaves it intact.

`pip install .` once put seven generic top-level packages (datasets, engine, runs, ...) into site-packages
and overwrote Hugging Face's ``datasets/__init__.py``. Now the distribution is one package, ``vr_toolkit``,
holding console commands that run the checkout. Each test makes a virtualenv that reuses this
interpreter's packages (torch; no network: --no-deps --no-build-isolation), installs a dummy ``datasets``
distribution, then the toolkit (a copy of the checkout, regular or editable), and checks: the dummy still
imports with its marker, the toolkit's RECORD holds no generic top-level name, and the commands run.
"""
import os
import shutil
import subprocess
import venv

import pytest

from tests.conftest import REPO

MARKER = "the dummy datasets distribution of tests/test_install.py"
GENERIC = ("engine", "runs", "trainers", "vr", "backbones", "descriptions", "train", "plugins", "scripts")
OWN_TOP_LEVEL = {"vr_toolkit", "vr_toolkit-0.1.0.dist-info"}


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VR_TOOLKIT_HOME", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _run(args, cwd, **env):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(**env), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _copy_checkout(dest):
    """The checkout's files (tracked and new, not ignored), as a fresh clone would hold them."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, names):
        src = os.path.join(REPO, name)
        if os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, name))
    return dest


def _dummy_datasets(folder):
    os.makedirs(os.path.join(folder, "datasets"))
    with open(os.path.join(folder, "pyproject.toml"), "w") as f:
        f.write('[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
                '[project]\nname = "datasets"\nversion = "9.9.9"\n\n[tool.setuptools]\npackages = ["datasets"]\n')
    with open(os.path.join(folder, "datasets", "__init__.py"), "w") as f:
        f.write(f"MARKER = {MARKER!r}\n")
    return folder


def _venv(folder):
    # no pip of its own: ensurepip would bring an old setuptools; this interpreter's pip installs into it
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(folder)
    return os.path.join(folder, "bin", "python")


def _installed(python, cwd):
    """(the dummy's MARKER and file, the top-level names of the toolkit's RECORD), seen from ``cwd``."""
    code = ("import datasets, importlib.metadata as m; print(datasets.MARKER); print(datasets.__file__); "
            "print(sorted({f.parts[0] for f in m.distribution('vr-toolkit').files}))")
    lines = _run([python, "-c", code], cwd).stdout.splitlines()
    return lines[0], lines[1], eval(lines[2])


def _check_beside_dummy(tmp_path, editable):
    python = _venv(tmp_path / "venv")
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip, _dummy_datasets(tmp_path / "dummy")], tmp_path)
    checkout = _copy_checkout(tmp_path / "checkout")
    _run([*pip, *(["-e"] if editable else []), checkout], tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    marker, where, top = _installed(python, elsewhere)
    assert marker == MARKER and str(tmp_path / "venv") in where, "the dummy datasets was shadowed or overwritten"
    site = os.path.dirname(os.path.dirname(where))
    with open(os.path.join(site, "datasets", "__init__.py")) as f:
        assert f.read() == f"MARKER = {MARKER!r}\n"
    # the RECORD: the package, its metadata and the console scripts (../../../bin/vr-*); nothing generic
    # (an editable install adds its import hook: __editable__*.pth, its finder and that finder's __pycache__)
    generic = {t for t in top if t not in OWN_TOP_LEVEL | {"..", "__pycache__"} and not t.startswith("__editable__")}
    assert not generic, f"the toolkit installed top-level names {sorted(generic)}"
    assert not set(os.listdir(site)) & {n + e for n in GENERIC for e in ("", ".py")}
    # and no generic name is importable outside the checkout (a .pth naming the checkout would make them so)
    code = f"import importlib.util as u; print([n for n in {GENERIC!r} if u.find_spec(n)])"
    assert _run([python, "-c", code], elsewhere).stdout.strip() == "[]"
    return python, checkout, elsewhere


@pytest.mark.slow  # a virtualenv and two pip installs
def test_regular_install_keeps_another_datasets_and_runs_the_checkout(tmp_path):
    python, checkout, elsewhere = _check_beside_dummy(tmp_path, editable=False)
    bindir = os.path.dirname(python)
    # outside any checkout and without $VR_TOOLKIT_HOME: one ERROR line that says how to set it
    proc = subprocess.run([os.path.join(bindir, "vr-train"), "--help"], cwd=elsewhere, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR: vr-train: no vr-toolkit checkout")
    assert "VR_TOOLKIT_HOME" in proc.stderr
    # from inside the checkout (a sub-folder), and through $VR_TOOLKIT_HOME from elsewhere
    sub = checkout / "configs"
    assert "--eval-only" in _run([os.path.join(bindir, "vr-train"), "--help"], sub).stdout
    out = _run([os.path.join(bindir, "vr-run"), "zsclip", "--help"], elsewhere, VR_TOOLKIT_HOME=str(checkout)).stdout
    assert "ZeroshotCLIP" in out


@pytest.mark.slow  # a virtualenv, two pip installs and an evaluation
def test_editable_install_keeps_another_datasets_and_evaluates_test_tiny(tmp_path):
    python, checkout, elsewhere = _check_beside_dummy(tmp_path, editable=True)
    # the editable install finds its own checkout from any folder; a tiny zero-shot evaluation runs there
    out = tmp_path / "run"
    (tmp_path / "data").mkdir()  # Digits is written there from scikit-learn's images
    proc = _run([os.path.join(os.path.dirname(python), "vr-train"), "--root", tmp_path / "data",
                 "--trainer", "ZeroshotCLIP", "--seed", "1", "--output-dir", out, "--eval-only",
                 "--dataset-config-file", checkout / "configs/datasets/digits.yaml",
                 "--config-file", checkout / "configs/trainers/ZeroshotCLIP/demo.yaml",
                 "MODEL.BACKBONE.NAME", "test-tiny", "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", "False"],
                elsewhere)
    assert "accuracy" in proc.stdout and (out / "results.json").is_file()
    # the installed interpreter still imports the dummy datasets, not the checkout's, outside the checkout
    assert _run([python, "-c", "import datasets; print(datasets.MARKER)"], elsewhere).stdout.strip() == MARKER


def test_checkout_rule_names_the_fix(tmp_path, monkeypatch):
    """The commands' checkout rule: the package's own parent (here the repository), else $VR_TOOLKIT_HOME."""
    from vr_toolkit import checkout

    assert checkout.find_checkout({}, cwd=str(tmp_path)) == REPO
    monkeypatch.setattr(checkout, "is_checkout", lambda folder: folder != REPO and os.path.isfile(
        os.path.join(folder, "train.py")))
    with pytest.raises(checkout.CheckoutNotFound, match=r"\$VR_TOOLKIT_HOME"):
        checkout.find_checkout({}, cwd=str(tmp_path))
    with pytest.raises(checkout.CheckoutNotFound, match="is not a vr-toolkit checkout"):
        checkout.find_checkout({"VR_TOOLKIT_HOME": str(tmp_path)}, cwd=str(tmp_path))
    (tmp_path / "train.py").write_text("")
    assert checkout.find_checkout({"VR_TOOLKIT_HOME": str(tmp_path)}) == str(tmp_path)
    (tmp_path / "sub").mkdir()
    assert checkout.find_checkout({}, cwd=str(tmp_path / "sub")) == str(tmp_path)
