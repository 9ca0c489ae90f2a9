"""The fake workspace of the protocol-script tests (base2new.sh, xd.sh): the cross-dataset targets and ImageNet,
and the ws fixture (shared here, not imported from another test module)."""
import pytest

from tests.fake_workspace import FakeWorkspace
from tests.script_helpers import load_script

protocols = load_script("protocols")


class Workspace(FakeWorkspace):
    """The protocols' datasets and trainers; training runs leave checkpoints; each run starts a new record."""

    def __init__(self, root):
        super().__init__(root, protocols.XD_TARGETS + protocols.DG_TARGETS + ("imagenet",),
                         ("AR", "ZeroshotCLIP", "DVP_CLS"), path="/usr/bin:/bin", FAKE_CHECKPOINTS="1")

    def run(self, script, *args, **env):
        self.record.unlink(missing_ok=True)
        return super().run(script, *args, **env)

    def launched(self):
        """The command lines of the runs the last run() launched."""
        return [r["argv"] for r in super().launched()]


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)
