"""The engine backend: ENGINE_BACKEND selection, and the project running on the real Dassl 0.6.3.

The selection tests, the weights_only checkpoint test and the cache-format test run everywhere. The rest
needs Dassl importable (Dassl.pytorch on PYTHONPATH plus tensorboard, pandas and wilds==1.2.2; see the
README) and is skipped otherwise. Those run their commands in child processes with ENGINE_BACKEND set,
so they check the Dassl backend whichever backend this test process uses.
"""
import json
import os
import pickle
import re
import sys
import textwrap
import types

import pytest
import torch

import engine
import train
from engine import backend
from tests.conftest import run_cmd

TOY = ["--trainer", "ToyLinear", "--seed", "1", "DATASET.NAME", "ToyColors", "INPUT.SIZE", "(16, 16)",
       "INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
       "OPTIM.NAME", "sgd", "OPTIM.LR", "0.5", "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.MAX_EPOCH", "3",
       "OPTIM.WARMUP_EPOCH", "1", "OPTIM.WARMUP_TYPE", "linear", "TRAIN.CHECKPOINT_FREQ", "1",
       "TEST.PER_CLASS_RESULT", "True"]


# Attributes of the builtin engine's classes that Dassl's lack, and why they are allowed.
BUILTIN_ONLY_ATTRIBUTES = {
    "sync_gradients": "TrainerBase: torchrun support; train.py refuses multi-process runs on Dassl",
}


@pytest.fixture(scope="module")
def dassl_ok():
    problem = backend.dassl_import_problem()
    if problem is not None:
        pytest.skip(f"real Dassl is not available ({problem})")


def _py(code, backend_name, **env):
    """Run ``code`` in a child Python with ENGINE_BACKEND=backend_name; return its stdout (must succeed)."""
    proc = run_cmd([sys.executable, "-c", textwrap.dedent(code)], ENGINE_BACKEND=backend_name, **env)
    assert proc.returncode == 0, f"{backend_name} child failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


# ---- selection (no Dassl needed) ------------------------------------------------------------------------

def test_selection_builtin_and_invalid_values():
    assert backend.select_backend({"ENGINE_BACKEND": "builtin"}) == "builtin"
    assert backend.select_backend({"ENGINE_BACKEND": " Builtin "}) == "builtin"
    assert backend.requested_backend({}) == "auto" and backend.requested_backend({"ENGINE_BACKEND": ""}) == "auto"
    with pytest.raises(ValueError, match=r"ENGINE_BACKEND='dasl' is not a valid engine backend.*auto, dassl, builtin"):
        backend.select_backend({"ENGINE_BACKEND": "dasl"})


def test_selection_when_dassl_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "dassl", None)  # makes find_spec("dassl") None and `import dassl` fail
    assert backend.dassl_import_problem() == "the `dassl` package is not importable"
    assert backend.select_backend({"ENGINE_BACKEND": "auto"}) == "builtin"
    with pytest.raises(ImportError) as info:
        backend.select_backend({"ENGINE_BACKEND": "dassl"})
    msg = str(info.value)
    assert "ENGINE_BACKEND=dassl but the `dassl` package is not importable" in msg
    assert "KaiyangZhou/Dassl.pytorch" in msg and "wilds==1.2.2" in msg and "ENGINE_BACKEND=builtin" in msg


def test_selection_with_a_broken_dassl_install(tmp_path):
    """A Dassl whose imports fail (e.g. wilds missing): auto warns and falls back, dassl names the failure."""
    fake = tmp_path / "dassl"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "config.py").write_text("import wilds_is_not_installed_here\n")
    out = _py("""
        import importlib.util, warnings
        # engine/backend.py alone (stdlib only): no engine package, no torch import in this child
        spec = importlib.util.spec_from_file_location("backend", "engine/backend.py")
        backend = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(backend)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print("auto ->", backend.select_backend({"ENGINE_BACKEND": "auto"}))
        print("warning:", caught[0].message)
        try:
            backend.select_backend({"ENGINE_BACKEND": "dassl"})
        except ImportError as err:
            print("error:", err)
    """, "builtin", PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    assert "auto -> builtin" in out
    assert re.search(r"warning: ENGINE_BACKEND=auto: Dassl is installed but `import dassl.config` failed "
                     r"\(ModuleNotFoundError: No module named 'wilds_is_not_installed_here'\); using the builtin", out)
    assert "error: ENGINE_BACKEND=dassl but `import dassl.config` failed" in out and "pip install" in out


def test_import_engine_with_an_invalid_value_fails_clearly():
    proc = run_cmd([sys.executable, "-c", "import engine"], ENGINE_BACKEND="dasl")
    assert proc.returncode != 0
    assert "ValueError: ENGINE_BACKEND='dasl' is not a valid engine backend" in proc.stderr


def test_exported_names_are_the_same_on_both_backends():
    assert engine.BACKEND in ("builtin", "dassl")
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert not missing
    import engine.builtin as builtin

    helpers = {"BACKEND", "extend_cfg", "register_config", "load_fewshot_cache", "save_fewshot_cache", "read_image"}
    assert all(hasattr(builtin, name) for name in set(engine.__all__) - helpers)


# ---- backend-independent guarantees Dassl relies on (no Dassl needed) ------------------------------------

def test_checkpoints_load_with_weights_only(toy_root, tmp_path):
    """Real Dassl loads checkpoints with torch.load's weights_only=True default (resume, eval-only): what the
    project saves, the warm-up scheduler's state included, must load that way."""
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "run"
    train.run(train.build_parser().parse_args(["--root", toy_root, "--output-dir", str(out)] + TOY))
    ckpt = torch.load(out / "toynet" / "model.pth.tar-3", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 3 and set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result"}
    assert ckpt["scheduler"]["warmup_epoch"] == 1 and "successor" in ckpt["scheduler"]


def test_fewshot_cache_is_written_with_dassls_class_path(toy_root, tmp_path, monkeypatch):
    """Whatever the backend, the cache names dassl.data.datasets.base_dataset.Datum, so CoOp's own
    ``pickle.load`` reads caches this project wrote into a shared data root."""
    img = os.path.join(toy_root, "toy_colors", "images", "red", "000.png")
    path = tmp_path / "split_fewshot" / "shot_1-seed_1.pkl"
    engine.save_fewshot_cache(str(path), {"train": [engine.Datum(img, 0, 0, "red")], "val": []})
    blob = path.read_bytes()
    assert b"dassl.data.datasets.base_dataset" in blob and b"engine.builtin" not in blob

    class CoOpDatum:  # stands in for Dassl's class, as CoOp would have it
        pass

    names = ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["dassl.data.datasets.base_dataset"].Datum = CoOpDatum
    data = pickle.loads(blob)
    assert isinstance(data["train"][0], CoOpDatum)
    assert (data["train"][0]._impath, data["train"][0]._label, data["train"][0]._classname) == (img, 0, "red")


# ---- the real Dassl backend (skipped without Dassl) -------------------------------------------------------

def test_engine_exports_dassls_objects_and_the_toy_trainer_registers_there(dassl_ok):
    out = _py("""
        import inspect, json
        import dassl.data.datasets, dassl.engine, dassl.utils
        import engine
        import engine.builtin as builtin
        import tests.toy_plugin as toy
        from dassl.data.datasets.base_dataset import Datum

        def params(obj):
            return list(inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters)

        helpers = {"BACKEND", "extend_cfg", "register_config", "load_fewshot_cache", "save_fewshot_cache", "read_image"}
        not_dassl = sorted(n for n in set(engine.__all__) - helpers
                           if not getattr(getattr(engine, n), "__module__", "dassl").startswith("dassl"))
        # the builtin twin of each Dassl callable accepts Dassl's parameters, in Dassl's order
        narrower = sorted(n for n in set(engine.__all__) - helpers if callable(getattr(engine, n))
                          and params(getattr(builtin, n))[:len(params(getattr(engine, n)))]
                          != params(getattr(engine, n)))
        # attributes the builtin classes (and registry objects) have that Dassl's lack
        extras = set()
        for n in set(engine.__all__) - helpers:
            d, b = getattr(engine, n), getattr(builtin, n)
            d, b = (d, b) if inspect.isclass(d) else (type(d), type(b))
            extras |= set(dir(b)) - set(dir(d))
        print(json.dumps({
            "backend": engine.BACKEND,
            "trainerx": engine.TrainerX is dassl.engine.TrainerX,
            "trainer_registry": engine.TRAINER_REGISTRY is dassl.engine.TRAINER_REGISTRY,
            "dataset_registry": engine.DATASET_REGISTRY is dassl.data.datasets.DATASET_REGISTRY,
            "datum": engine.Datum is Datum,
            "load_checkpoint": engine.load_checkpoint is dassl.utils.load_checkpoint,
            "toy_registered": dassl.engine.TRAINER_REGISTRY.get("ToyLinear") is toy.ToyLinear,
            "toy_is_dassl_trainer": issubclass(toy.ToyLinear, dassl.engine.TrainerX),
            "toy_dataset": dassl.data.datasets.DATASET_REGISTRY.get("ToyColors") is toy.ToyColors,
            "not_dassl": not_dassl,
            "narrower": narrower,
            "extras": sorted(extras),
        }))
    """, "dassl")
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts.pop("backend") == "dassl"
    assert facts.pop("not_dassl") == [] and facts.pop("narrower") == []
    # code using a builtin-only attribute works on builtin and breaks on Dassl: keep this list short
    assert set(facts.pop("extras")) <= set(BUILTIN_ONLY_ATTRIBUTES)
    assert all(facts.values()), facts
    assert backend.select_backend({"ENGINE_BACKEND": "auto"}) == "dassl"  # auto picks an importable Dassl


def test_toy_trainer_trains_resumes_and_evaluates_on_dassl(dassl_ok, toy_root, tmp_path):
    """train.py on Dassl: warm-up through engine.schedulers, kill after epoch 2, resume and eval-only through
    Dassl's own checkpoint loading (torch.load with weights_only=True)."""
    out = tmp_path / "run"
    base = [sys.executable, "train.py", "--root", toy_root, "--output-dir", str(out)] + TOY
    env = {"ENGINE_BACKEND": "dassl", "VR_PLUGINS": "tests.toy_plugin"}
    killed = run_cmd(base, TOY_KILL_AT_EPOCH="2", **env)
    assert killed.returncode != 0 and (out / "toynet" / "model.pth.tar-2").exists()
    assert "Engine backend: dassl" in killed.stdout

    resumed = run_cmd(base, **env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Previous epoch: 2" in resumed.stdout and "epoch [3/3]" in resumed.stdout
    assert "epoch [1/3]" not in resumed.stdout
    log = (out / "log.txt").read_text()
    assert "Finish training" in log and "=> per-class result" in log
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "ToyLinear" and res["config"]["OPTIM"]["WARMUP_EPOCH"] == 1
    assert re.findall(r"\* accuracy: ([\d.]+)%", log)[-1] == f"{res['accuracy']:.1f}"

    ev_out = tmp_path / "eval"
    ev = run_cmd([sys.executable, "train.py", "--root", toy_root, "--output-dir", str(ev_out), "--eval-only",
                  "--model-dir", str(out), "--load-epoch", "3"] + TOY, **env)
    assert ev.returncode == 0, ev.stderr[-3000:]
    res_ev = json.loads((ev_out / "results.json").read_text())
    assert res_ev["accuracy"] == pytest.approx(res["accuracy"]) and res_ev["per_class"] == res["per_class"]


def test_fewshot_caches_cross_between_backends(dassl_ok, toy_root, tmp_path):
    """A cache written under one backend loads under the other (and with plain pickle.load under Dassl)."""
    img = os.path.join(toy_root, "toy_colors", "images", "blue", "001.png")
    written_builtin = tmp_path / "builtin" / "shot_2-seed_1.pkl"
    written_dassl = tmp_path / "dassl" / "shot_2-seed_1.pkl"
    # each child reads the cache the other backend wrote (if any), then writes its own
    step = """
        import os, pickle
        import engine
        read, write = {read!r}, {write!r}
        if read:
            data = engine.load_fewshot_cache(read)
            d = data["train"][0]
            print(type(d).__module__, d.impath, d.label, d.domain, d.classname, len(data["train"]), len(data["val"]))
            if engine.BACKEND == "dassl":  # what CoOp does: a plain pickle.load (needs Dassl importable)
                with open(read, "rb") as f:
                    print("plain", type(pickle.load(f)["val"][0]).__module__)
        if write:
            datum = engine.Datum({img!r}, 2, 0, "blue")
            engine.save_fewshot_cache(write, {{"train": [datum, datum], "val": [datum]}})
    """
    _py(step.format(read="", write=str(written_builtin), img=img), "builtin")
    on_dassl = _py(step.format(read=str(written_builtin), write=str(written_dassl), img=img), "dassl")
    on_builtin = _py(step.format(read=str(written_dassl), write="", img=img), "builtin")
    assert on_dassl.splitlines()[-2:] == [f"dassl.data.datasets.base_dataset {img} 2 0 blue 2 1",
                                          "plain dassl.data.datasets.base_dataset"]
    assert on_builtin.splitlines()[-1] == f"engine.builtin.data.datasets {img} 2 0 blue 2 1"
