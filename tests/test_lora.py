"""vr/lora.py: LoRA on open_clip's attention equals the frozen model at the start (bit for bit in evaluation),
its training path equals the merged one, one optimiser step changes only the adapted matrices, and the
parameter count at ViT-B/16 is the formula's 184,320 (CLIP-LoRA's q/k/v, rank 2, both encoders)."""
import copy

import pytest
import torch

from backbones import load_clip
from tests.conftest import docs_text
from vr.lora import LoRAAttention, apply_lora, block_indices, lora_parameter_count, tower_blocks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_backbone():
    return load_clip("test-tiny", torch.device("cpu"))


@pytest.fixture
def tiny(tiny_backbone):
    backbone = tiny_backbone
    model = copy.deepcopy(backbone.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    images = torch.randn(3, 3, backbone.image_size, backbone.image_size)
    tokens = backbone.tokenizer(["a photo of a red.", "a photo of a blue square"])
    return model, images, tokens


def encode(model, images, tokens):
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def test_lora_at_initialisation_is_the_frozen_model(tiny):
    model, images, tokens = tiny
    frozen = encode(model, images, tokens)
    adapters = apply_lora(model)
    assert all(torch.count_nonzero(p) == 0 for n, p in adapters.named_parameters() if n.endswith("lora_B"))
    after = encode(model, images, tokens)
    assert torch.equal(after[0], frozen[0]) and torch.equal(after[1], frozen[1])  # evaluation: bit for bit
    adapters.train()  # the training path (dropout on the branch input): the same up to float rounding
    torch.manual_seed(1)
    trained = encode(model, images, tokens)
    for a, b in zip(trained, frozen, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_training_path_equals_the_merged_weights(tiny):
    """With B != 0 and no dropout: q/k/v/o of the clean input plus s B A x, through SDPA, equals the base
    module's forward with W + s B A (the path evaluation takes)."""
    model, images, tokens = tiny
    adapters = apply_lora(model, projections=("q", "k", "v", "o"), dropout=0.0)
    torch.manual_seed(2)
    for name, p in adapters.named_parameters():
        if name.endswith("lora_B"):
            p.data.normal_(std=0.05)
    for tower in ("vision", "text"):
        attn = tower_blocks(model, tower)[0].attn
        x = torch.randn(2, 5, attn.base.embed_dim)
        mask = torch.full((5, 5), float("-inf")).triu(1) if tower == "text" else None
        merged = attn(x, x, x, need_weights=False, attn_mask=mask)[0]
        branch = attn._branch_forward(x, x, x, mask)
        torch.testing.assert_close(branch, merged, rtol=1e-5, atol=1e-5)
        w = attn.updates["q"]
        assert torch.allclose(w.delta(), w.scaling * w.lora_B @ w.lora_A) and w.scaling == pytest.approx(2 ** -0.5)


def test_one_step_changes_only_the_adapted_matrices(tiny):
    model, images, tokens = tiny
    clip_before = {k: v.clone() for k, v in model.state_dict().items()}
    adapters = apply_lora(model, dropout=0.25)
    adapters.train()
    optim = torch.optim.AdamW(adapters.parameters(), lr=1e-2, weight_decay=1e-2)
    f_img, f_txt = model.encode_image(images), model.encode_text(tokens)
    loss = (f_img.sum(1).mean() - f_txt.sum(1).mean()) ** 2
    loss.backward()
    optim.step()
    renamed = {k.replace("attn.base.", "attn."): v for k, v in model.state_dict().items() if "lora_" not in k}
    assert set(renamed) == set(clip_before)
    assert all(torch.equal(renamed[k], clip_before[k]) for k in clip_before)  # CLIP itself never moves
    for tower in ("vision", "text"):
        for block in tower_blocks(model, tower):
            attn = block.attn
            assert isinstance(attn, LoRAAttention) and set(attn.updates) == {"q", "k", "v"}
            merged = attn.merged_weights()
            assert set(merged) == {"in_proj_weight"}  # the output projection is not adapted
            delta = (merged["in_proj_weight"] - attn.base.in_proj_weight).detach()
            assert all(torch.count_nonzero(part) > 0 for part in delta.chunk(3))  # q, k and v each moved
    names = {n.rsplit(".", 1)[-1] for n, _ in adapters.named_parameters()}
    assert names == {"lora_A", "lora_B"}


def test_vit_b16_parameter_count_is_the_formula_and_the_readme_says_it():
    import open_clip

    config = open_clip.get_model_config("ViT-B-16")
    with torch.device("meta"):  # the architecture only: no weights, no memory
        model = open_clip.model.CLIP(**config)
    adapters = apply_lora(model)
    formula = lora_parameter_count([(768, 12), (512, 12)], projections=3, r=2)
    assert adapters.count() == formula == 184_320
    assert len(adapters.vision) == len(adapters.text) == 12
    assert f"{formula:,} parameters at ViT-B/16" in docs_text()


def test_positions_follow_clip_lora_and_fail_clearly():
    assert block_indices("all", 12) == list(range(12))
    assert block_indices("half-up", 12) == [6, 7, 8, 9, 10, 11] and block_indices("top3", 12) == [9, 10, 11]
    with pytest.raises(ValueError, match='"bottom" is defined for 12-block towers; this one has 2'):
        block_indices("bottom", 2)
    with pytest.raises(ValueError, match='Unknown LoRA position "middle"'):
        block_indices("middle", 12)


def test_lora_runs_under_autocast_with_fp32_adapters(tiny):
    """CLIP-LoRA's precision: the forward under autocast (bf16 on the CPU, as fp16 runs on CUDA), A and B and
    their gradients fp32; the evaluation path under autocast too."""
    model, images, tokens = tiny
    adapters = apply_lora(model)
    adapters.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f_img, f_txt = model.encode_image(images), model.encode_text(tokens)
    assert f_img.dtype == torch.bfloat16
    (f_img.float().sum() + f_txt.float().sum()).backward()
    grads = [p.grad for n, p in adapters.named_parameters() if n.endswith("lora_A")]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    adapters.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.encode_text(tokens).float()).all()
