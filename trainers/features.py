"""Shared code of the feature-based CLIP baselines (LinearProbe, LPPlusPlus, CLIPAdapter, TipAdapter,
TipAdapterF): frozen-CLIP feature extraction with an on-disk cache, augmentation epochs for a cache model,
text classifiers and the trainer base (the hyper-parameter search: trainers/hp_search.py).

Every method here learns a small head on top of frozen CLIP image features. The head is the only
``nn.Module`` registered with the engine (``FeatureModel`` keeps CLIP outside its state_dict, like
vr.clip.FrozenCLIP), so checkpoints hold what was learned and nothing of CLIP.

Images are transformed here from the backbone's own size, mean and std (INPUT.* transforms are not used):
- "test": resize the shorter side (bicubic) + centre crop + normalise (CoOp's test transform);
- "cache": RandomResizedCrop(scale 0.5-1, bicubic) + flip + normalise (Tip-Adapter's and LP++'s augmentation);
- "dassl": RandomResizedCrop(scale 0.08-1, bicubic) + flip + normalise (CoOp/Dassl training, CLIP-Adapter).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T

from engine import DatasetWrapper, TrainerX, compute_accuracy
from engine.checkpoint_files import model_file
from engine.extend import trainer_node
from vr.text import class_text, templates_for

from .backbone_kind import check_backbone_kind, frozen_backbone, is_classifier_encoder
from .checkpoints import RunCheckpoints
from .class_subset import class_subset, head_run
from .clip_plumbing import load_backbone
from .evaluated_run import evaluated_checkpoint
from .pipeline import DATA_MANAGER_ATTRIBUTES
from .run_files import save_tensors
from .run_record import CheckpointError

if TYPE_CHECKING:
    from yacs.config import CfgNode

FEATURE_DIR = "features"  # OUTPUT_DIR/features/<split>-<fingerprint>.pt: extracted features, reused on rerun
# TEMPLATES "tip": Tip-Adapter's text (also LP++'s): this 7-template ensemble for ImageNet, CoOp's per-dataset
# template elsewhere.
TEMPLATE_CHOICES = ("tip", "coop", "vr")
TIP_IMAGENET_TEMPLATES = ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                          "a {} in a video game.", "art of the {}.", "a photo of the small {}.")


# ---- transforms ---------------------------------------------------------------------------------
def clip_transforms(encoder):
    """The three pipelines named in the module docstring, at the backbone's input size."""
    size, bicubic = encoder.image_size, T.InterpolationMode.BICUBIC
    norm = [T.ToTensor(), T.Normalize(encoder.mean, encoder.std)]
    return {
        "test": T.Compose([T.Resize(size, interpolation=bicubic), T.CenterCrop(size), *norm]),
        "cache": T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0), interpolation=bicubic),
                            T.RandomHorizontalFlip(p=0.5), *norm]),
        "dassl": T.Compose([T.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=bicubic),
                            T.RandomHorizontalFlip(p=0.5), *norm]),
    }


# ---- features -------------------------------------------------------------------------------------
@torch.no_grad()
def encode_images(encoder, images):
    """(B, D) UNnormalised fp32 image embeddings of normalised images (frozen CLIP, no gradient)."""
    with torch.autocast(images.device.type, enabled=False):
        if is_classifier_encoder(encoder):  # pooled penultimate features
            return encoder.image_features(images).float()
        return encoder.model.encode_image(images).float()


def _fingerprint(cfg, encoder, data_source, transform, epochs, seed):
    """What the features depend on: backbone (name, weights), images, labels, transform (its full description:
    size, crop, mean and std), augmentation passes and seed."""
    backbone = cfg.MODEL.BACKBONE
    ident = [encoder.name, str(backbone.get("WEIGHTS", "")), bool(backbone.get("PRETRAINED", True)),
             repr(transform), int(epochs), int(seed)]
    h = hashlib.sha256(json.dumps(ident).encode())
    for item in data_source:
        h.update(f"{item.impath}\t{item.label}\n".encode())
    return h.hexdigest()[:16]


class FeatureStore:
    """Extracts frozen-CLIP features of a split once per run and keeps them in memory and on disk.

    ``epochs`` > 1 averages the unnormalised features of that many augmented passes over an unshuffled
    loader (Tip-Adapter's cache); the augmentation of pass e is seeded with ``seed * 1000 + e``, so a rerun
    draws the same crops and may reuse the file in ``OUTPUT_DIR/features``.
    """

    def __init__(self, cfg, encoder, transforms, device, folder):
        self.cfg, self.encoder, self.transforms, self.device = cfg, encoder, transforms, device
        self.folder = folder
        self._memory = {}

    def loader(self, data_source, transform_name):
        wrapper = DatasetWrapper(self.cfg, data_source, transform=self.transforms[transform_name], is_train=False)
        return DataLoader(wrapper, batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE, shuffle=False,
                          num_workers=self.cfg.DATALOADER.NUM_WORKERS)

    def _one_pass(self, data_source, transform_name):
        feats, labels = [], []
        for batch in self.loader(data_source, transform_name):
            feats.append(encode_images(self.encoder, batch["img"].to(self.device)).cpu())
            labels.append(torch.as_tensor(batch["label"]))
        return torch.cat(feats), torch.cat(labels).long()

    def extract(self, split: str, data_source: Sequence[Any], transform_name: str = "test", epochs: int = 1,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) unnormalised features (mean over ``epochs`` passes) and (N,) labels, on the CPU."""
        if not data_source:
            raise ValueError(f"The {split} split has no images to extract features from.")
        key = _fingerprint(self.cfg, self.encoder, data_source, self.transforms[transform_name], epochs, seed)
        if key in self._memory:
            return self._memory[key]
        path = os.path.join(self.folder, f"{split}-{key}.pt") if self.folder else ""
        if path and os.path.isfile(path):
            stored = torch.load(path, map_location="cpu", weights_only=True)
            print(f"Features of the {split} split ({transform_name}, {epochs} pass(es)) reused from {path}")
            self._memory[key] = (stored["features"], stored["labels"])
            return self._memory[key]
        start, total, labels = time.time(), None, None
        for epoch in range(int(epochs)):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) * 1000 + epoch)
                feats, labels = self._one_pass(data_source, transform_name)
            total = feats if total is None else total + feats
        feats = total / int(epochs)
        print(f"Extracted features of the {split} split: {tuple(feats.shape)} ({transform_name} transform, "
              f"{epochs} pass(es), {time.time() - start:.1f}s)")
        if path:
            save_tensors(path, {"features": feats, "labels": labels})
        self._memory[key] = (feats, labels)
        return feats, labels


def text_classifier(encoder: Any, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(C, D) class weights: the normalised mean of the normalised template embeddings of each class."""
    texts = [t.format(class_text(c)) for c in classnames for t in templates]
    emb = encoder.encode_text(texts).view(len(classnames), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def same_images(a, b):
    """Whether two splits hold the same images (ImageNet in CoOp's layout: val = test)."""
    return bool(a) and bool(b) and sorted(x.impath for x in a) == sorted(x.impath for x in b)


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---- model and trainer --------------------------------------------------------------------------------
class FeatureModel(nn.Module):
    """Frozen CLIP image encoder + a learned head on its unnormalised features; only ``head`` is saved."""

    def __init__(self, encoder, head):
        super().__init__()
        self.__dict__["encoder"] = encoder  # not a submodule: never saved, never put in train mode
        self.head = head
        self.register_buffer("class_rows", None, persistent=False)  # restrict_to: the evaluated classes' rows

    def restrict_to(self, rows):
        """Score only the head's classes ``rows`` (a subset of the trained classes), in that order."""
        self.class_rows = torch.as_tensor(list(rows), dtype=torch.long)  # before .to(device): moved with it

    def forward(self, image):
        logits = self.head(encode_images(self.encoder, image))
        return logits if self.class_rows is None else logits.index_select(1, self.class_rows)


class FeatureTrainer(RunCheckpoints, TrainerX):
    """Base of the feature-based baselines. A subclass sets NODE and builds its head (``build_head``).

    FITTED trainers learn in one call of ``fit`` on extracted features (no epoch loop): ``train`` writes the
    run record, fits, saves ``<MODEL_NAME>/model.pth.tar-1`` and tests. The others train through the
    engine's epoch loop. Checkpoints carry the run record of trainers/checkpoints.py: the head's identity
    is HEAD_KIND, the feature width, the text templates and ``head_identity``; a method with per-class
    learned parts (PER_CLASS says which) leaves CLASS_TRANSFER empty: another class set is one clear error,
    except a subset of its classes matched by class id (ImageNet -> -A / -R: ``head_classes``).
    """

    NODE = ""
    MODEL_NAME = "head"
    TRAINS = True
    RUN_COST = "features"
    FITTED = False
    TRAIN_TRANSFORM = "dassl"  # the train loader's pipeline (clip_transforms)
    HEAD_KIND = ""  # the "kind" of prompt_identity
    MODEL_CLASS = FeatureModel  # frozen CLIP + the head (a method's subclass may add what it can explain)
    PER_CLASS = ""  # what is learned per training class (why it cannot score other classes)

    # ---- what a method defines ------------------------------------------------------------------
    def check_method_cfg(self, cfg: CfgNode) -> None:
        """Method-specific config checks (run before anything is loaded)."""

    def build_head(self, classnames: Sequence[str]) -> nn.Module:
        raise NotImplementedError

    def build_optimizer_and_scheduler(self, head: nn.Module) -> tuple[Any, Any]:
        return None, None

    def fit(self) -> None:
        raise NotImplementedError

    def count_trainable_params(self, head: nn.Module) -> int:
        return count_trainable(head)

    def method_record(self) -> dict[str, Any]:
        """Method facts for results.json (under the node's lower-case name)."""
        return {}

    def head_identity(self) -> dict[str, Any]:
        """Method settings the saved head assumes (shapes, fixed ratios), beside kind / width / templates."""
        return {}

    # ---- config and data --------------------------------------------------------------------------
    @property
    def node(self) -> CfgNode:
        return self.cfg.TRAINER[self.NODE]

    def check_cfg(self, cfg: CfgNode) -> None:
        check_backbone_kind(type(self), cfg)  # a classifier for a text method: refused first
        choice = str(trainer_node(cfg, self.NODE).get("TEMPLATES", "coop")).lower()
        if choice not in TEMPLATE_CHOICES:
            raise ValueError(f'Unknown template choice "{choice}" (TRAINER.{self.NODE}.TEMPLATES). Use one of: '
                             f"{', '.join(TEMPLATE_CHOICES)}.")
        self.check_method_cfg(cfg)

    def build_data_loader(self) -> None:
        from engine import DataManager

        cfg = self.cfg
        self.encoder = frozen_backbone(load_backbone(cfg, self.device, self))
        self.transforms = clip_transforms(self.encoder)
        dm = DataManager(cfg, custom_tfm_train=self.transforms[self.TRAIN_TRANSFORM],
                         custom_tfm_test=self.transforms["test"])
        for name in DATA_MANAGER_ATTRIBUTES:  # what Dassl's build_data_loader sets, on either backend
            setattr(self, name, getattr(dm, name))
        self.dm = dm
        self.store = FeatureStore(cfg, self.encoder, self.transforms, self.device,
                                  os.path.join(cfg.OUTPUT_DIR, FEATURE_DIR) if cfg.OUTPUT_DIR else "")
        self.head_dataset, self.head_classnames, self.class_subset = self.head_classes()
        self.val_is_test = same_images(dm.dataset.val, dm.dataset.test)
        if self.val_is_test:
            print("Note: the validation split holds the test images (e.g. ImageNet in CoOp's layout): "
                  "hyper-parameters chosen on it are chosen on the test set (recorded in results.json).")

    def head_classes(self) -> tuple[str, list[str], dict[str, Any] | None]:
        """(dataset, class names) the head is built for, and the class subset it is scored on (or None).
        A per-class head evaluated from a checkpoint (``--eval-only --model-dir``) is the trained head: the
        training run's dataset (its templates) and classes, restricted to the evaluated classes' rows when
        they are a subset (trainers/class_subset.py). Otherwise: this run's dataset and classes."""
        dataset, (name, _) = self.dm.dataset, head_run(self.cfg, self.CLASS_TRANSFER)
        path, record = evaluated_checkpoint()
        if not record or self.CLASS_TRANSFER:
            return name, list(dataset.classnames), None
        subset = class_subset(record, dataset, path)
        if subset:
            print(f"{self.cfg.TRAINER.NAME}: the {subset['evaluated']} evaluated classes are rows of the "
                  f"{subset['trained']} trained ones (matched by {subset['matched_by']}): the head is built for "
                  f"the trained classes and scored on those rows")
        return name, list(record["classnames"] if subset else dataset.classnames), subset

    def features(self, split: str, transform_name: str = "test", epochs: int = 1,
                 normalise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of ``split`` (train / val / test) on the device (augmentation passes seeded by
        SEED; by 0 when SEED < 0)."""
        source = getattr(self.dm.dataset, "train_x" if split == "train" else split)
        seed = max(int(self.cfg.SEED), 0)
        feats, labels = self.store.extract(split, source, transform_name, epochs=epochs, seed=seed)
        feats = F.normalize(feats, dim=-1) if normalise else feats
        return feats.to(self.device), labels.to(self.device)

    def hp_selection(self, without_val_note: str) -> str:
        """HP_SELECTION as run: "val" without validation images becomes "defaults", said with the note that
        ends "Note: no validation images" (what the method keeps instead; recorded in results.json)."""
        wanted = str(self.node.HP_SELECTION)
        if wanted == "val" and not self.dm.dataset.val:
            print(f"Note: no validation images{without_val_note}")
            return "defaults"
        return wanted

    def embed_dim(self) -> int:
        """Width of CLIP's joint embedding (the image features' size)."""
        if is_classifier_encoder(self.encoder):
            return self.encoder.feature_dim
        return int(self.encoder.encode_text(["a"]).shape[-1])

    def text_weights(self) -> torch.Tensor:
        """(C, D) normalised text classifier of the TEMPLATES choice (coop, vr, or tip: see TIP_IMAGENET_TEMPLATES)."""
        choice, dataset = str(self.node.get("TEMPLATES", "coop")).lower(), self.head_dataset
        if choice == "tip":
            templates = list(TIP_IMAGENET_TEMPLATES) if dataset == "ImageNet" else templates_for(dataset, "coop")
        else:
            templates = templates_for(dataset, choice)
        print(f"Text classifier templates: {templates}")
        return text_classifier(self.encoder, self.head_classnames, templates)

    # ---- model --------------------------------------------------------------------------------------
    def build_model(self) -> None:
        self.feature_dim = self.embed_dim()
        head = self.build_head(self.head_classnames)
        self.model = self.MODEL_CLASS(self.encoder, head)
        if self.class_subset:
            self.model.restrict_to(self.class_subset["rows"])
        self.model.to(self.device)
        self.trainable_params = self.count_trainable_params(head)
        print(f"{self.cfg.TRAINER.NAME}: CLIP is frozen; trainable parameters: {self.trainable_params:,}")
        self.optim, self.sched = self.build_optimizer_and_scheduler(head)
        self.register_model(self.MODEL_NAME, head, self.optim, self.sched)

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)

    def forward_backward(self, batch: dict[str, Any]) -> dict[str, float]:
        """One cross-entropy step of a trained head (CLIP-Adapter, TaskRes); the LR steps once per epoch (CoOp)."""
        image, label = batch["img"].to(self.device), batch["label"].to(self.device)
        logits = self.model(image)
        loss = F.cross_entropy(logits, label)
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}

    def train(self) -> None:
        if not self.FITTED:
            return super().train()
        self.time_start = time.time()
        self.start_epoch, self.epoch, self.max_epoch = 0, 0, 1
        self.write_run_record()
        self.fit()
        self.save_model(0, self.output_dir)
        print(f"Saved {os.path.join(self.output_dir, self.MODEL_NAME, model_file(1))} "
              f"(evaluate with --eval-only --model-dir {self.output_dir} --load-epoch 1)")
        self.after_train()

    def extra_results(self) -> dict[str, Any]:
        """results.json: the method's record and what was loaded (trainable_params: engine.results). After
        --eval-only the record comes from the checkpoint, so where the hyper-parameters were chosen (val, or
        the test set: ``test_selected``) stays with every number made from it."""
        record = self.method_record()
        saved = getattr(self, "loaded_method_record", None)
        if saved and not getattr(self, "record", None):
            record = {**record, **saved, "loaded_from_checkpoint": True}
        return {self.NODE.lower(): record, **self.loaded_results()}

    def run_identity(self) -> dict[str, Any]:
        identity = super().run_identity()
        if getattr(self, "record", None):  # after fitting: the search's record travels with the checkpoint
            identity["method_record"] = self.method_record()
        return identity

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        super().load_model(directory, epoch)
        if directory:  # the record of the one loaded checkpoint (RunCheckpoints.load_model keeps it)
            self.loaded_method_record = (getattr(self, "loaded_run", None) or {}).get("method_record")

    # ---- checkpoints: identity and other class sets (trainers/checkpoints.py) --------------------
    @classmethod
    def check_training_cfg(cls, cfg: CfgNode) -> None:
        if cls.FITTED and int(cfg.OPTIM.MAX_EPOCH) < 1:  # fitted in one call: OPTIM.MAX_EPOCH is not used
            cfg = cfg.clone()
            cfg.defrost()
            cfg.OPTIM.MAX_EPOCH = 1
        super().check_training_cfg(cfg)

    def prompt_identity(self) -> dict[str, Any]:
        identity = {"kind": self.HEAD_KIND, "feature_dim": int(self.feature_dim)}
        if "TEMPLATES" in self.node:
            identity["templates"] = str(self.node.TEMPLATES).lower()
        identity.update(self.head_identity())
        return identity

    def check_other_classes(self, trained: Sequence[str], evaluated: Sequence[str]) -> None:
        if self.CLASS_TRANSFER:
            return
        raise CheckpointError(
            f"{self.cfg.TRAINER.NAME} cannot score classes other than those it was trained on: {self.PER_CLASS} "
            f"(trained: {len(trained)} classes, evaluated: {len(evaluated)}, of which "
            f"{len(set(evaluated) - set(trained))} unseen). Base-to-new evaluation is not applicable to it; "
            f"evaluate on the training classes (the DATASET.SUBSAMPLE_CLASSES of the training run), or a subset "
            f"of them identified by class id (ImageNet -> ImageNet-A / -R, docs/protocols.md).")
