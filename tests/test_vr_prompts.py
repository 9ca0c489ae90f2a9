"""Visual prompts: frame geometry, entry counts, normalisation, v prompts in one op, errors, the registry of
kinds and their additive parts (the first-layer split's decomposition)."""
import pytest
import torch
from yacs.config import CfgNode

from vr import prompts as prompts_module
from vr.prompts import (
    NoPrompt,
    PaddingPrompt,
    VisualPrompt,
    WatermarkPrompt,
    build_prompt,
    loader_size_for,
    prompt_from_node,
    prompt_kinds,
    register_prompt,
)

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def _norm(x):
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _entries_that_change_output(prompt, x):
    """Entries of delta with a non-zero gradient of the output (every frame entry moves it)."""
    weights = torch.randn(prompt(x).shape, generator=torch.Generator().manual_seed(0))
    (prompt(x) * weights).sum().backward()
    return int((prompt.delta.grad != 0).sum())


def test_padding_frame_has_39936_entries_and_pads_16px():
    p = PaddingPrompt(224, 192)
    x = torch.rand(2, 3, 192, 192)
    assert p.num_trainable_entries() == 39936
    assert _entries_that_change_output(p, x) == 39936
    out = p(x)
    assert out.shape == (2, 3, 224, 224)
    # inside: the image, normalised; frame: sigmoid(0) = 0.5 on a zero pad, normalised
    assert torch.allclose(out[:, :, 16:208, 16:208], _norm(x), atol=1e-6)
    assert torch.allclose(out[:, :, :16, :], _norm(torch.full((2, 3, 16, 224), 0.5)), atol=1e-6)
    assert torch.allclose(out[:, :, :, 208:], _norm(torch.full((2, 3, 224, 16), 0.5)), atol=1e-6)


def test_padding_changing_inner_delta_does_not_change_output():
    p = PaddingPrompt(224, 192)
    x = torch.rand(1, 3, 192, 192)
    before = p(x).detach()
    with torch.no_grad():
        p.delta[:, :, 16:208, 16:208] = 5.0
    assert torch.equal(p(x).detach(), before)
    with torch.no_grad():
        p.delta[:, :, 0, 0] = 5.0
    assert not torch.equal(p(x).detach(), before)


def test_padding_odd_difference_puts_extra_pixel_left_and_top():
    p = PaddingPrompt(224, 191)  # left/top = 17, right/bottom = 16
    assert (p.pad_before, p.pad_after) == (17, 16)
    x = torch.rand(1, 3, 191, 191)
    assert torch.allclose(p(x)[:, :, 17:208, 17:208], _norm(x), atol=1e-6)
    assert p.num_trainable_entries() == 3 * (224 ** 2 - 191 ** 2)


def test_watermark_frame_has_69840_entries_and_no_sigmoid():
    p = WatermarkPrompt(224, 30)
    x = torch.rand(2, 3, 224, 224)
    assert p.num_trainable_entries() == 69840
    assert _entries_that_change_output(p, x) == 69840
    with torch.no_grad():
        p.delta.fill_(2.0)
    out = p(x)
    assert torch.allclose(out[:, :, 30:194, 30:194], _norm(x)[:, :, 30:194, 30:194], atol=1e-6)
    assert torch.allclose(out[:, :, :30], _norm(x)[:, :, :30] + 2.0, atol=1e-6)  # added after normalising


def test_v_prompts_are_one_parameter_applied_prompt_major():
    v, b = 3, 4
    p = PaddingPrompt(224, 192, num_prompts=v)
    assert p.delta.shape == (v, 3, 224, 224) and len(list(p.parameters())) == 1
    assert p.num_trainable_entries() == 3 * 39936
    with torch.no_grad():
        p.delta.copy_(torch.randn_like(p.delta))
    x = torch.rand(b, 3, 192, 192)
    out = p(x)
    assert out.shape == (v * b, 3, 224, 224)
    for i in range(v):
        single = PaddingPrompt(224, 192)
        with torch.no_grad():
            single.delta.copy_(p.delta[i:i + 1])
        assert torch.allclose(out[i * b:(i + 1) * b], single(x), atol=1e-6)


def test_no_prompt_only_normalises():
    p = NoPrompt(224, MEAN, STD)
    x = torch.rand(2, 3, 224, 224)
    assert torch.allclose(p(x), _norm(x), atol=1e-6)
    assert p.num_trainable_entries() == 0 and len(list(p.parameters())) == 0


def test_build_prompt_and_clear_errors():
    assert isinstance(build_prompt("padding", 224, MEAN, STD), PaddingPrompt)
    assert isinstance(build_prompt("Watermark", 224, MEAN, STD), WatermarkPrompt)
    with pytest.raises(ValueError,
                       match='Unknown visual prompt kind "frame".*Registered kinds: none, padding, watermark'):
        build_prompt("frame", 224, MEAN, STD)
    with pytest.raises(ValueError, match='Unknown visual prompt kind "paddin".*Did you mean "padding"\\?'):
        build_prompt("paddin", 224, MEAN, STD)
    with pytest.raises(ValueError, match="input size \\(224\\) must be smaller.*INPUT_SIZE"):
        build_prompt("padding", 224, MEAN, STD, input_size=224)
    with pytest.raises(ValueError, match="frame of width 120 does not fit.*PAD"):
        build_prompt("watermark", 224, MEAN, STD, pad=120)
    with pytest.raises(ValueError, match=r"expects a batch of \[0,1\] images of shape \(B, 3, 192, 192\)"):
        PaddingPrompt(224, 192)(torch.rand(1, 3, 224, 224))


def _random(prompt, seed=0):
    if hasattr(prompt, "delta"):
        with torch.no_grad():
            prompt.delta.copy_(torch.randn(prompt.delta.shape, generator=torch.Generator().manual_seed(seed)))
    return prompt


@pytest.mark.parametrize("kind", ["padding", "watermark", "none"])
def test_additive_parts_sum_to_the_forward_output(kind):
    p = _random(build_prompt(kind, 224, MEAN, STD, num_prompts=3, input_size=192, pad=30))
    x = torch.rand(2, 3, p.loader_size, p.loader_size, generator=torch.Generator().manual_seed(1))
    pixels, pattern = p.additive_parts(x)
    assert pixels.shape == (2, 3, 224, 224) and not pixels.requires_grad
    summed = _norm(pixels).unsqueeze(0) + (0 if pattern is None else pattern.unsqueeze(1))
    summed = summed.expand(3, -1, -1, -1, -1) if pattern is None else summed
    assert p.ADDITIVE
    assert torch.allclose(summed.reshape(6, 3, 224, 224), p(x), atol=1e-5)
    if pattern is not None:
        assert pattern.shape == (3, 3, 224, 224) and pattern.requires_grad


def test_trainer_node_builds_the_registered_kind_with_its_own_keys():
    node = CfgNode({"PROMPT": "padding", "INPUT_SIZE": 160, "PAD": 999})  # PAD belongs to watermark
    p = prompt_from_node(node, 224, MEAN, STD, num_prompts=2)
    assert isinstance(p, PaddingPrompt) and p.input_size == 160 and p.num_prompts == 2
    assert loader_size_for(node, 224) == 160
    node.PROMPT = "watermark"
    node.PAD = 20
    assert loader_size_for(node, 224) == 224 and prompt_from_node(node, 224, MEAN, STD).pad == 20


def test_a_prompt_kind_defined_elsewhere_registers_itself(monkeypatch):
    monkeypatch.setattr(prompts_module.PROMPTS, "classes", dict(prompts_module.PROMPTS.classes))

    @register_prompt
    class Corner(VisualPrompt):
        """A learned 8x8 corner, written over the image (not additive)."""

        kind = "corner"
        CONFIG_KEYS = ("PAD",)

        def __init__(self, image_size, pad=8, num_prompts=1, mean=MEAN, std=STD):
            super().__init__(image_size, mean, std, num_prompts)
            self.pad = pad

    assert prompt_kinds()[:3] == ("none", "padding", "watermark") and prompt_kinds()[-1] == "corner"
    assert build_prompt("Corner", 224, MEAN, STD, pad=4).pad == 4
    assert not Corner.ADDITIVE and Corner(224).pictures() == []
    with pytest.raises(KeyError, match='"corner" is already registered by .*Corner'):
        register_prompt(Corner)
    with pytest.raises(ValueError, match='"corne".*Did you mean "corner"\\?.*none, padding, watermark, .*corner'):
        build_prompt("corne", 224, MEAN, STD)
