"""results.json files as train.py writes them, for the tests of the tables and curves (shared here, not
imported from another test module)."""
import json


def write_run(root, rel, method, seed, acc, *, dataset, shots=16, backbone="ViT-B/16",
              dataset_cfg=None):
    """A results.json as train.py writes it (the keys the tables read, and config.DATASET)."""
    folder = root / rel / method / f"vit_b16_{shots}shots" / f"seed{seed}"
    folder.mkdir(parents=True)
    data = {"method": method, "dataset": dataset, "backbone": backbone, "shots": shots,
            "seed": seed, "accuracy": acc, "macro_f1": acc - 1, "per_class": {},
            "config": {"DATASET": dict({"NAME": dataset, "SUBSAMPLE_CLASSES": "all"},
                                       **(dataset_cfg or {}))}}
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def write_recorded_run(root, rel, method, seed, acc, *, dataset="DescribableTextures", shots=16, optim=None,
                       data_identity=None, classes="all", **config):
    """A results.json as train.py writes it: the merged config (with SEED, OUTPUT_DIR and other keys that
    differ between seeds by design) and, when given, the data identity."""
    folder = root / rel / method / f"vit_b16_{shots}shots" / f"seed{seed}"
    folder.mkdir(parents=True)
    cfg = {"SEED": seed, "OUTPUT_DIR": str(folder), "DATALOADER": {"NUM_WORKERS": seed},
           "DATASET": {"NAME": dataset, "ROOT": f"/data{seed}", "NUM_SHOTS": shots, "SUBSAMPLE_CLASSES": classes},
           "OPTIM": {"LR": 0.1, "MAX_EPOCH": 2, **(optim or {})}, **config}
    data = {"method": method, "dataset": dataset, "backbone": "ViT-B/16", "shots": shots, "seed": seed,
            "accuracy": acc, "macro_f1": acc - 1, "per_class": {}, "config": cfg}
    if data_identity is not None:
        data["data_identity"] = data_identity
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def flag_result(folder, **extra):
    """Add keys to a results.json written by a writer here or by tests/test_scripts_results.py's write_result
    (e.g. untrained, a method record)."""
    path = folder / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **extra}))
    return path
