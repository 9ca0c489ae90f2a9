"""Shared fixtures: the repository root on sys.path, offline settings, test-tiny and the toy data."""
import gc
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
# The published description files (never copied into the project): ../shared/descriptions beside the
# checkout, or $VR_TEST_DESCRIPTIONS (e.g. a folder filled by `python -m descriptions.download`). Tests
# that need them skip when they are absent.
DESCRIPTIONS = os.environ.get("VR_TEST_DESCRIPTIONS") or os.path.join(SHARED, "descriptions")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores; one intra-op thread each (the models here are small: two
    # threads in one process are not faster than one). Inherited by the commands the tests start.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def docs_text():
    """The README and every docs/ page, as one text with single spaces (what the documentation states)."""
    pages = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(REPO, "docs")))
    text = ""
    for rel in pages:
        with open(os.path.join(REPO, rel), encoding="utf-8") as f:
            text += f.read() + "\n"
    return " ".join(text.split())


def subprocess_env(**extra):
    """Environment for running the project's commands in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cmd(args, cwd=REPO, timeout=300, **env):
    """Run a command from the repository root; return the CompletedProcess (text, both streams)."""
    return subprocess.run(args, cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def kill_and_resume(argv, tmp_path, after_kill=None):
    """train.py ``argv(out)`` (a toy_plugin run) once uninterrupted into tmp_path/whole, and once SIGKILLed after its
    epoch 2 was checkpointed (tests/toy_plugin.py TOY_KILL_AT_EPOCH) then run again into tmp_path/killed;
    ``after_kill(killed)`` looks at the folder in between. -> (whole, killed, the resumed run's CompletedProcess).

    Only the killed run is a child process; the other two run here (train.main), which spares two imports of
    torch (about 10 s each on 2 cores). All three use one intra-op thread, so their arithmetic is the same."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert train_here(argv(whole)).returncode == 0
    died = run_cmd(argv(killed), VR_PLUGINS="tests.toy_plugin", TOY_KILL_AT_EPOCH="2", OMP_NUM_THREADS="1")
    assert died.returncode != 0 and not (killed / "results.json").exists(), died.stderr[-2000:]
    if after_kill is not None:
        after_kill(killed)
    resumed = train_here(argv(killed))
    assert resumed.returncode == 0, resumed.stderr
    return whole, killed, resumed


def train_here(argv):
    """``[python, "train.py", *args]`` run in this process, from the repository root, with one intra-op thread and
    the caller's RNG states restored after. -> CompletedProcess (stdout captured; errors raise)."""
    import contextlib
    import io

    import torch

    import tests.toy_plugin  # noqa: F401  (ToyColors, as VR_PLUGINS registers it in a child)
    import train
    from engine.distributed import seeded_rngs

    assert argv[1] == "train.py", argv
    out, threads, cwd = io.StringIO(), torch.get_num_threads(), os.getcwd()
    torch.set_num_threads(1)
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), seeded_rngs(0):
            code = train.main(argv[2:])
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), "")


@pytest.hookimpl(optionalhook=True)  # xdist's hook: without xdist the suite runs in one process
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a worker per core, at most 4 and one per 3 GiB of memory (each loads torch and a model)."""
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = 6
    return max(1, min(os.cpu_count() or 1, 4, int(memory_gib // 3)))


def pytest_configure(config):
    """With xdist, tests of one ``xdist_group`` share a worker (the ``slurm`` tests: one cluster at a time): what
    ``-n`` alone means (``--dist load``) becomes ``loadgroup`` for the controller's scheduler, and the workers (which
    parse the command line again) tag the grouped tests' ids for it."""
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"
    if os.environ.get("PYTEST_XDIST_WORKER") and hasattr(config.option, "loadgroup"):
        config.option.loadgroup = True


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collecting imports torch, torchvision, open_clip and scikit-learn (about 400k objects that live as long as the
    process): with the cyclic garbage collector off meanwhile and those objects frozen after (gc.freeze), no
    collection scans them again (it took about a tenth of each worker's time: docs/tests.md)."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        gc.enable()


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the xdist_group markers
def pytest_collection_modifyitems(config, items):
    """Markers from the fixtures a test uses: ``digits_tiny`` -> ``slow`` (its first use pre-trains it, minutes);
    ``dassl_ok`` (tests/test_backend_dassl.py) -> ``dassl`` (needs the real Dassl; skipped without it)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "digits_tiny" in fixtures:
            item.add_marker(pytest.mark.slow)
        if "dassl_ok" in fixtures:
            item.add_marker(pytest.mark.dassl)
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))


@pytest.fixture(scope="session")
def tiny_clip():
    """The `test-tiny` backbone, built once per session (it is the same in every process)."""
    from backbones import load_clip

    return load_clip("test-tiny")


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A data root holding the ToyColors dataset of tests/toy_plugin.py."""
    from tests.toy_plugin import make_toy_root

    root = tmp_path_factory.mktemp("toy_data")
    make_toy_root(str(root))
    return str(root)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server (tests/download_mirror.py) for the download tests, DATASETS_MIRROR unset."""
    from tests.download_mirror import Mirror

    m = Mirror(tmp_path / "mirror")
    monkeypatch.delenv("DATASETS_MIRROR", raising=False)
    yield m
    m.close()


@pytest.fixture(scope="session")
def shared_descriptions():
    if not os.path.isdir(DESCRIPTIONS):
        pytest.skip("../shared/descriptions is not present")
    return DESCRIPTIONS


@pytest.fixture(scope="module")
def one_torch_thread():
    """test-tiny is tiny: on a busy 2-core machine one intra-op thread is many times faster (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
