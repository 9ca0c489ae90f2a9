"""Every config key that the README, docs/, the scripts' help texts and the runners mention is a real key of
the merged config tree (issue 19: every method script's --help suggested DATASET.ROOT_FOLDER)."""
import glob
import os
import re

from engine.config_check import leaf_keys
from plugins import project_cfg
from tests.conftest import REPO

KEY = re.compile(r"(?<![\w.<])[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+(?![\w<])")
DEFINED_HERE = re.compile(r'ensure_node\(cfg, "([A-Z0-9_.]+)"\)')  # a plugin example that adds its own node
SHOWN_AS_WRONG = re.compile(r"Unknown config key: [A-Z0-9_.]+")  # an example of the error itself
SOURCES = ["README.md", "train.py", "docs/*.md", "scripts/*.sh", "scripts/*.py", "runs/*.py"]


def test_every_config_key_in_docs_and_help_texts_exists():
    leaves = set(leaf_keys(project_cfg()))
    nodes = {".".join(k.split(".")[:i]) for k in leaves for i in range(1, k.count(".") + 1)}
    unknown = []
    for pattern in SOURCES:
        for path in sorted(glob.glob(os.path.join(REPO, pattern))):
            with open(path, encoding="utf-8") as f:
                text = SHOWN_AS_WRONG.sub("", f.read())
            defined = tuple(DEFINED_HERE.findall(text))
            for key in {m.group(0) for m in KEY.finditer(text)}:
                if key not in leaves and key not in nodes and not key.startswith(defined or ("\0",)):
                    unknown.append(f"{os.path.relpath(path, REPO)}: {key}")
    assert not unknown, "not config keys: " + "; ".join(sorted(unknown))
