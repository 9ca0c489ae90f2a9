"""Reopen a finished run from its folder: its config, its checkpoints, and the trained model.

scripts/predict.py and scripts/plot_prm.py read a run folder (train.py's OUTPUT_DIR) through this module.
A run folder holds ``config.yaml`` (the merged config) and ``<model name>/model.pth.tar-<epoch>`` with a
``checkpoint`` file naming the latest one. The trained model is rebuilt the way train.py builds it
(Dassl defaults -> engine.extend_cfg -> the run's config.yaml -> build_trainer) and the checkpoint is
loaded into it, so the dataset named in the config must still be present (it gives the class names and
the test transform), as must the description files of description methods. Datasets and trainers of
plugins are found through VR_PLUGINS, as for train.py.
"""
import contextlib
import glob
import io
import os
from dataclasses import dataclass, field

import torch
from PIL import Image, UnidentifiedImageError

from engine.checkpoint_files import EPOCH_FILE, EPOCH_FILE_GLOB, epoch_of, model_file

DEVICES = ("auto", "cpu", "cuda")


def check_run_dir(run_dir) -> str:
    """The absolute run folder; a clear error if it is missing or not a run of train.py."""
    path = os.path.abspath(os.path.expanduser(os.fspath(run_dir)))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"The run folder {path} does not exist. Pass the OUTPUT_DIR of a training run "
                                f"(the folder holding config.yaml and log.txt).")
    if not os.path.isfile(os.path.join(path, "config.yaml")):
        raise FileNotFoundError(f"{path} has no config.yaml, so it is not the OUTPUT_DIR of a run of train.py. "
                                f"Pass the folder that holds config.yaml, log.txt and the checkpoints.")
    return path


def import_plugins():
    """Import the plugin packages and the modules named in VR_PLUGINS, as train.py does (plugins.py)."""
    from plugins import load_plugins

    load_plugins()


def read_config(run_dir, root: str | None = None, freeze: bool = True):
    """The run's merged config, rebuilt on the current defaults; OUTPUT_DIR is set to ``run_dir``."""
    import engine

    run_dir = check_run_dir(run_dir)
    import_plugins()
    cfg = engine.get_cfg_default()
    engine.extend_cfg(cfg)
    path = os.path.join(run_dir, "config.yaml")
    try:
        cfg.merge_from_file(path)
    except (KeyError, ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"Cannot read {path}: {err}. The run's config has a key this code does not know; if it "
                         f"comes from a plugin, name the plugin module in VR_PLUGINS.") from err
    cfg.OUTPUT_DIR = run_dir
    if root:
        cfg.DATASET.ROOT = os.path.abspath(os.path.expanduser(root))
    if freeze:
        cfg.freeze()
    return cfg


def trainer_node(cfg) -> str:
    """The TRAINER.<NODE> config node of the run's trainer ("" if it has none)."""
    from engine import TRAINER_REGISTRY

    try:
        node = getattr(TRAINER_REGISTRY.get(cfg.TRAINER.NAME), "NODE", "")
    except KeyError:
        node = ""
    if not node and str(cfg.TRAINER.NAME).upper() in cfg.TRAINER:
        node = str(cfg.TRAINER.NAME).upper()
    return node


def uses_prm(cfg) -> bool:
    """Whether the run's trainer aggregates with a PRM (DVP_CSE / DVP_CLS with AGGREGATION 'prm')."""
    node = trainer_node(cfg)
    return bool(node) and str(cfg.TRAINER[node].get("AGGREGATION", "")).lower() == "prm"


# ---- checkpoints -------------------------------------------------------------------------------------
def saved_epochs(run_dir, name) -> list[int]:
    """Epochs with a ``model.pth.tar-<epoch>`` file in ``run_dir/name``, ascending."""
    epochs = []
    for path in glob.glob(os.path.join(run_dir, name, EPOCH_FILE_GLOB)):
        epoch = epoch_of(os.path.basename(path))
        if epoch is not None:
            epochs.append(epoch)
    return sorted(epochs)


def model_names(run_dir) -> list[str]:
    """Sub-folders of the run that hold epoch checkpoints (Dassl's per-model folders)."""
    names = [d for d in sorted(os.listdir(run_dir)) if os.path.isdir(os.path.join(run_dir, d))]
    return [d for d in names if saved_epochs(run_dir, d)]


def latest_epoch(run_dir, name) -> int:
    """The epoch named in ``name/checkpoint`` (Dassl's pointer to the latest save), else the highest saved."""
    epochs = saved_epochs(run_dir, name)
    pointer = os.path.join(run_dir, name, "checkpoint")
    if os.path.isfile(pointer):
        with open(pointer) as f:
            epoch = epoch_of(f.read().strip())
        if epoch in epochs:
            return epoch
    return epochs[-1]


def find_checkpoints(run_dir, load_epoch: int | None = None, names: list[str] | None = None):
    """(epoch, {model name: checkpoint path}): the latest save, or ``load_epoch``; clear errors otherwise."""
    run_dir = check_run_dir(run_dir)
    names = list(names) if names else model_names(run_dir)
    if not names or any(not saved_epochs(run_dir, n) for n in names):
        raise FileNotFoundError(
            f"{run_dir} holds no checkpoint (expected <model name>/{EPOCH_FILE} inside it). Train the run "
            f"to the end first; evaluation-only runs (ZeroshotCLIP) save none.")
    epoch = latest_epoch(run_dir, names[0]) if load_epoch is None else int(load_epoch)
    paths = {}
    for name in names:
        have = saved_epochs(run_dir, name)
        if epoch not in have:
            raise FileNotFoundError(f"{os.path.join(run_dir, name)} has no {model_file(epoch)}; saved epochs: "
                                    f"{', '.join(map(str, have))}. Pass one of them with --load-epoch.")
        paths[name] = os.path.join(run_dir, name, model_file(epoch))
    return epoch, paths


def load_state(path) -> dict[str, torch.Tensor]:
    """The state_dict of one checkpoint file (on the CPU)."""
    from engine import load_checkpoint

    return load_checkpoint(path)["state_dict"]


# ---- devices and images ------------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """'auto' (CUDA when available), 'cpu' or 'cuda' (the card CUDA_VISIBLE_DEVICES selects)."""
    name = str(name).lower()
    if name not in DEVICES:
        raise ValueError(f'Unknown device "{name}". Use one of: {", ".join(DEVICES)} (pick a GPU with '
                         f"CUDA_VISIBLE_DEVICES).")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available here. Use --device cpu.")
    return torch.device(name)


def check_images(paths) -> list[str]:
    """Fail (before any model is built) on a path that is missing, a folder, or not a readable image."""
    checked = []
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"The image {path} does not exist. Check the path.")
        if os.path.isdir(path):
            raise ValueError(f"{path} is a folder, not an image. Pass image files (e.g. {path}/*.jpg).")
        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{path} cannot be read as an image ({err}). Pass a JPEG, PNG or another format "
                             f"PIL reads.") from err
        checked.append(path)
    return checked


def read_rgb(path) -> Image.Image:
    """The image as RGB, as the data loaders read it (engine.imageio: the project's one reader)."""
    from engine.imageio import read_image

    return read_image(path)


# ---- the trained model -------------------------------------------------------------------------------
@dataclass
class LoadedRun:
    """A trainer rebuilt from a run folder, with the checkpoint of ``epoch`` loaded (model in eval mode)."""

    run_dir: str
    cfg: object
    trainer: object
    epoch: int
    checkpoints: dict[str, str]
    classnames: list[str] = field(default_factory=list)
    log: str = ""  # what the rebuild printed (data summary, descriptions, ...)

    @property
    def model(self):
        return self.trainer.model

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    @property
    def transform(self):
        """The run's test transform (what its test loader applies to an image)."""
        tfm = getattr(getattr(self.trainer.test_loader, "dataset", None), "transform", None)
        if tfm is None:
            raise ValueError(f"The {self.cfg.TRAINER.NAME} trainer's test loader has no transform to apply "
                             f"to new images.")
        return tfm

    def images_to_batch(self, paths) -> torch.Tensor:
        tfm = self.transform
        return torch.stack([tfm(read_rgb(p)) for p in paths]).to(self.device)

    @torch.no_grad()
    def class_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.trainer.model_inference(batch)


def _check_buildable(cfg, run_dir, root_given=False):
    import engine

    trainers = engine.TRAINER_REGISTRY.registered_names()
    if cfg.TRAINER.NAME not in trainers:
        raise ValueError(f'The run was trained with "{cfg.TRAINER.NAME}", which is not a registered trainer. If it '
                         f"comes from a plugin, name its module in VR_PLUGINS. Registered: {sorted(trainers)}.")
    datasets = engine.DATASET_REGISTRY.registered_names()
    if cfg.DATASET.NAME not in datasets:
        raise ValueError(f'The run used the dataset "{cfg.DATASET.NAME}", which is not registered. If it comes '
                         f"from a plugin, name its module in VR_PLUGINS.")
    if not cfg.DATASET.ROOT or not os.path.isdir(cfg.DATASET.ROOT):
        where = "given with --root" if root_given else f'recorded in {os.path.join(run_dir, "config.yaml")}'
        raise FileNotFoundError(
            f'The dataset root "{cfg.DATASET.ROOT}" {where} does not exist. The model is rebuilt through its '
            f"dataset ({cfg.DATASET.NAME}: class names, test transform), so put the dataset back there or pass "
            f"--root DIR with the folder that holds it now.")


def load_run(run_dir, load_epoch: int | None = None, device: str = "auto", root: str | None = None,
             quiet: bool = True) -> LoadedRun:
    """Rebuild the run's trainer and load its latest checkpoint (or ``load_epoch``).

    Every check a user can fail (folder, checkpoint, device, dataset root) runs before CLIP and the data
    are loaded. ``quiet`` keeps the rebuild's own printing out of stdout (it is kept in ``.log``).
    """
    from engine import build_trainer, set_random_seed

    run_dir = check_run_dir(run_dir)
    dev = resolve_device(device)
    cfg = read_config(run_dir, root=root, freeze=False)
    cfg.USE_CUDA = dev.type == "cuda"
    for key in ("CACHE_TRAIN", "CACHE_TEST"):  # nothing is trained or tested: do not decode the sets
        if key in cfg.DATALOADER:
            cfg.DATALOADER[key] = False
    cfg.freeze()
    _check_buildable(cfg, run_dir, root_given=bool(root))
    find_checkpoints(run_dir, load_epoch)  # fail before the slow part
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf) if quiet else contextlib.nullcontext():
        if cfg.SEED >= 0:
            set_random_seed(cfg.SEED)
        trainer = build_trainer(cfg)
        epoch, paths = find_checkpoints(run_dir, load_epoch, names=trainer.get_model_names())
        trainer.load_model(run_dir, epoch=epoch)
    trainer.set_model_mode("eval")
    classnames = [trainer.lab2cname[i] for i in range(trainer.num_classes)]
    return LoadedRun(run_dir, cfg, trainer, epoch, paths, classnames, buf.getvalue())
