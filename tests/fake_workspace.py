"""A repo-like folder with a fake train.py interpreter, for the runner scripts' tests (sweep.sh and the
method scripts: tests/test_scripts_sweep*.py, test_scripts_method_runners.py; base2new.sh and xd.sh:
tests/test_scripts_protocol*.py).

PYTHON points at FAKE_TRAIN, which appends its arguments (with CUDA_VISIBLE_DEVICES and its pid) to
$FAKE_RECORD and writes a results.json into --output-dir that records the merged config the way train.py
does (the two yaml files, then the trailing KEY VALUE pairs, merged here independently of runs/layout.py),
so the tests see exactly which runs were launched and the runner's done check reads a real record.
`train.py --check-opts ...` (the runners' option check) is recorded in $FAKE_RECORD.checks and exits 0, or 1
with an ERROR line when the options hold the key FAKE_BAD_OPT. Switches: FAKE_FAIL (an ERROR line and exit 3
when the output dir contains it), FAKE_SLEEP (seconds) and FAKE_SLEEP_IN (sleep only in output dirs containing
it, after writing its pid there), FAKE_NO_RESULTS (exit 0 without results.json), FAKE_CHECKPOINTS (a training
run leaves prompt_learner/model.pth.tar-3 and -12).
Data as train.py finds it: the dataset folder is $DATA/<dataset config name> (the workspace creates one
per dataset, with a split.json); without it the fake fails as train.py does; results.json records
data_identity and data_sources (the folder and split.json's sha256) as train.py does.
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"

FAKE_TRAIN = """\
#!{python}
import ast, json, os, sys, time
import yaml
args = sys.argv[1:]
if "--check-opts" in args:  # the runner's one option check per sweep: recorded apart, refused by FAKE_BAD_OPT
    if os.environ.get("FAKE_RECORD"):
        with open(os.environ["FAKE_RECORD"] + ".checks", "a") as f:
            f.write(json.dumps(args) + "\\n")
    bad = os.environ.get("FAKE_BAD_OPT")
    if bad in args:
        print(f"ERROR: Unknown config key: {{bad}} (do you mean OPTIM.LR?). Keys are ...", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
if os.environ.get("FAKE_RECORD"):
    with open(os.environ["FAKE_RECORD"], "a") as f:
        f.write(json.dumps({{"argv": args, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
                            "pid": os.getpid()}}) + "\\n")
def flag(name):
    return args[args.index(name) + 1]
out = flag("--output-dir")
os.makedirs(out, exist_ok=True)
sleep_in = os.environ.get("FAKE_SLEEP_IN", "")
if sleep_in and sleep_in in out:
    with open(os.path.join(out, "pid"), "w") as f:
        f.write(str(os.getpid()))
if (os.environ.get("FAKE_SLEEP") or sleep_in) and sleep_in in out:
    time.sleep(float(os.environ.get("FAKE_SLEEP") or 60))
fail = os.environ.get("FAKE_FAIL")
if fail and fail in out:
    print(f"ERROR: fake failure (FAKE_FAIL={{fail}})", file=sys.stderr)
    sys.exit(3)
if os.environ.get("FAKE_NO_RESULTS"):
    sys.exit(0)
if os.environ.get("FAKE_CHECKPOINTS") and "--eval-only" not in args:
    os.makedirs(os.path.join(out, "prompt_learner"), exist_ok=True)
    for epoch in (3, 12):
        open(os.path.join(out, "prompt_learner", f"model.pth.tar-{{epoch}}"), "w").close()
# The merged config as train.py records it: yaml files, then the trailing KEY VALUE pairs.
config = {{}}
def merge(dst, src):
    for key, value in src.items():
        if isinstance(value, dict):
            merge(dst.setdefault(key, {{}}), value)
        else:
            dst[key] = value
for name in ("--dataset-config-file", "--config-file"):
    with open(flag(name)) as f:
        merge(config, yaml.safe_load(f) or {{}})
rest, opts = args[args.index("--output-dir") + 2:], []
while rest:  # train.py's flags after --output-dir (--eval-only, --model-dir DIR, --load-epoch N), then options
    if rest[0] in ("--eval-only", "--overwrite"):
        rest = rest[1:]
    elif rest[0].startswith("--"):
        rest = rest[2:]
    else:
        opts, rest = opts + rest[:2], rest[2:]
for key, value in zip(opts[::2], opts[1::2]):
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {{}})
    node[leaf] = value
import hashlib
dataset = os.path.splitext(os.path.basename(flag("--dataset-config-file")))[0]
split = os.path.join(flag("--root"), dataset, "split.json")
if not os.path.isfile(split):
    print(f"ERROR: dataset folder not found: {{split}}", file=sys.stderr)
    sys.exit(4)
with open(split, "rb") as f:
    split_hash = hashlib.sha256(f.read()).hexdigest()
results = {{"method": flag("--trainer"), "shots": config["DATASET"]["NUM_SHOTS"],
           "seed": int(flag("--seed")), "accuracy": 50.0, "config": config,
           "data_identity": {{"split_sha256": split_hash, "num_classes": 2}},
           "data_sources": [{{"role": "dataset_dir", "path": dataset}},
                            {{"role": "split", "path": dataset + "/split.json", "sha256": split_hash}}]}}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f)
"""


class FakeWorkspace:
    """configs/ for the given datasets and trainers, the fake interpreter, and helpers to run the scripts.

    ``path``: the PATH the scripts get (default: an empty bin/ folder, so no sbatch and no nvidia-smi
    unless a test puts them there); ``env``: more variables for every run.
    """

    def __init__(self, root, datasets, trainers, path=None, **env):
        self.root = root
        for name in datasets:
            self.write(f"configs/datasets/{name}.yaml", "DATASET:\n  NAME: X\n")
            self.write(f"data/{name}/split.json", '{"train": [], "val": [], "test": []}\n')
        for trainer in trainers:
            self.write(f"configs/trainers/{trainer}/vit_b16.yaml", "{}\n")
        self.fake = root / "fake_python"
        self.fake.write_text(FAKE_TRAIN.format(python=sys.executable))
        self.fake.chmod(0o755)
        self.record = root / "record.jsonl"
        self.bin = root / "bin"
        self.bin.mkdir()
        self.env = {"PYTHON": str(self.fake), "DATA": str(root / "data"), "OUTPUT": "out",
                    "FAKE_RECORD": str(self.record), "RUNNER_PYTHON": sys.executable,
                    "PATH": path or str(self.bin), "HOME": str(root), **env}

    def write(self, rel, text):
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def run(self, script, *args, **env):
        return subprocess.run(["/bin/bash", str(SCRIPTS / script), *args], cwd=self.root,
                              env=dict(self.env, **env), capture_output=True, text=True, timeout=60)

    def option_checks(self):
        """The argument lists of the runners' ``train.py --check-opts`` calls so far."""
        path = self.root / (self.record.name + ".checks")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def launched(self):
        """The fake's records of the runs launched so far: {"argv", "gpu", "pid"} each."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


def out_dir(argv):
    """The --output-dir of a recorded command line."""
    return argv[argv.index("--output-dir") + 1]
