"""The fake workspace of the sweep and method-script tests: configs of every registered trainer (runs/trainers.json)
and the ws fixture (shared here, not imported from another test module)."""
import subprocess

import pytest

from runs import catalogue
from runs.jobs import Job, Settings, command, resolve_method
from runs.layout import parse_run_dir
from tests.fake_workspace import FakeWorkspace

METHODS = list(catalogue.load().values())  # every registered trainer (runs/trainers.json)
TRAINERS = [m.trainer for m in METHODS]


class Workspace(FakeWorkspace):
    """Configs of every registered trainer (and AR's rn50), with the sweep's helpers."""

    def __init__(self, root):
        super().__init__(root, ("caltech101", "dtd"), TRAINERS)
        self.write("configs/trainers/AR/rn50.yaml", "{}\n")

    def launched_dirs(self):
        return [r["argv"][r["argv"].index("--output-dir") + 1] for r in self.launched()]

    def finish(self, rel, *opts):
        """A finished run at out/<rel>: the runner's command for it, run by the fake (not recorded)."""
        run = parse_run_dir(rel)
        job = Job(resolve_method(run.trainer), run.dataset, run.shots, run.cfg, run.seed, opts)
        env = {k: v for k, v in self.env.items() if k != "FAKE_RECORD"}
        subprocess.run(command(job, Settings(env)), cwd=self.root, env=env, check=True, timeout=60)
        return self.root / "out" / rel / "results.json"


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)
