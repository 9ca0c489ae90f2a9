"""ReprogrammedCLIP: v prompts in one encoder call, each text scored by its own prompt, state."""
import pytest
import torch
import torch.nn.functional as F

from vr import FrozenCLIP, Identity, Mean, PaddingPrompt, ReprogrammedCLIP, TopKMean, description_table, template_table

CLASSES = ["red_apple", "green", "blue"]


@pytest.fixture(scope="module")
def encoder(tiny_clip):
    return FrozenCLIP(tiny_clip)


def _sets(n_sets, m):
    return [{c: [f"set {s} sentence {j} about the {c} thing." for j in range(m)] for c in CLASSES}
            for s in range(n_sets)]


def _random_prompts(v, seed=0):
    p = PaddingPrompt(224, 192, num_prompts=v)
    with torch.no_grad():
        p.delta.copy_(torch.randn(p.delta.shape, generator=torch.Generator().manual_seed(seed)))
    return p


def _single(prompts, i):
    one = PaddingPrompt(224, 192)
    with torch.no_grad():
        one.delta.copy_(prompts.delta[i:i + 1])
    return one


def test_batched_v_prompt_forward_equals_separate_calls_and_chunking(encoder):
    v, m = 3, 2
    x = torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(1))
    prompts = _random_prompts(v)
    model = ReprogrammedCLIP(encoder, prompts, description_table(CLASSES, _sets(v, m), [0, 1, 2]), Mean())
    feats = model.image_features(x)
    assert feats.shape[:2] == (v, 2)
    for i in range(v):
        assert torch.allclose(feats[i], encoder.encode_image(_single(prompts, i)(x)), atol=1e-5)
    chunked = ReprogrammedCLIP(encoder, prompts, model.text_table, Mean(), encoder_chunk=4)
    assert torch.allclose(chunked.description_logits(x), model.description_logits(x), atol=1e-5)


def test_dvp_cls_each_description_gets_its_own_cluster_prompt(encoder):
    v, m = 3, 4
    table = description_table(CLASSES, _sets(1, m), num_prompts=v)
    assignment = torch.tensor([0, 1, 2, 1, 2, 2, 0, 0, 1, 0, 2, 1])  # a cluster per (class, slot)
    table.set_prompts(assignment)
    prompts = _random_prompts(v, seed=3)
    model = ReprogrammedCLIP(encoder, prompts, table, Mean())
    x = torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(2))
    z = model.description_logits(x)
    assert z.shape == (2, len(CLASSES), m)
    per_prompt = [encoder.encode_image(_single(prompts, i)(x)) for i in range(v)]
    for n, p in enumerate(assignment.tolist()):
        c, j = divmod(n, m)
        want = encoder.logit_scale * per_prompt[p] @ table.embeddings[n]
        assert torch.allclose(z[:, c, j], want, atol=1e-4)


def test_dvp_cse_prompt_i_scores_cause_i_slots(encoder):
    v, m = 3, 2
    table = description_table(CLASSES, _sets(v, m), [0, 1, 2])
    assert table.prompt_grid().tolist() == [[0, 0, 1, 1, 2, 2]] * 3
    assert table.texts[2 * 1 + 0] == ["set 1 sentence 0 about the red_apple thing."]
    prompts = _random_prompts(v, seed=4)
    model = ReprogrammedCLIP(encoder, prompts, table, Mean())
    x = torch.rand(1, 3, 192, 192)
    z = model.description_logits(x)
    f2 = encoder.encode_image(_single(prompts, 2)(x))
    assert torch.allclose(z[0, 1, 4:6], encoder.logit_scale * f2[0] @ table.embeddings[10:12].t(), atol=1e-4)


def test_template_embedding_is_renormalised_mean_and_underscores_become_spaces(encoder):
    table = template_table(CLASSES, ["a photo of {}.", "{} texture."])
    assert table.texts[0] == ["a photo of red apple.", "{} texture.".format("red apple")]
    table.encode(encoder)
    each = encoder.encode_text(table.texts[0])
    assert torch.allclose(table.embeddings[0], F.normalize(each.mean(0), dim=0), atol=1e-6)
    assert torch.allclose(table.embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_state_is_what_was_learned_and_clip_stays_frozen(encoder):
    table = description_table(CLASSES, _sets(1, 3))
    model = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, TopKMean(2))
    state = model.state_dict()
    assert set(state) == {"prompts.delta", "text_table.classes", "text_table.slots", "text_table.prompts",
                          "text_table._extra_state"}
    model.train()
    assert not encoder.model.training
    x = torch.rand(2, 3, 192, 192)
    model(x).sum().backward()
    assert model.prompts.delta.grad is not None and model.prompts.delta.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.model.parameters())

    # a checkpoint holding other sentences is refused, unless the trainer verified it is of these classes
    # (its run record); then the sentences are adopted and re-encoded on load
    other = description_table(CLASSES, [{c: [f"another text {j} for {c}." for j in range(3)] for c in CLASSES}])
    other_model = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), other, TopKMean(2))
    with pytest.raises(ValueError, match="texts differ"):
        model.load_state_dict(other_model.state_dict())
    model.text_table.adopt_checkpoint_texts = True
    model.load_state_dict(other_model.state_dict())
    assert model.text_table.texts == other.texts
    assert torch.equal(model.text_table.embeddings, other.embeddings)


def test_mismatched_parts_are_errors(encoder):
    table = description_table(CLASSES, _sets(2, 2), [0, 1])
    with pytest.raises(ValueError, match="assigns texts to 2 prompts but 1 visual prompts"):
        ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, Mean())
    with pytest.raises(ValueError, match="one text per class"):
        ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), description_table(CLASSES, _sets(1, 2)), Identity())
    with pytest.raises(ValueError, match="no sentences for the classes \\['blue'\\]"):
        description_table(CLASSES, [{"red_apple": ["x" * 30], "green": ["y" * 30]}])


def test_mixed_precision_forward_backward_with_prm(encoder):
    """Autocast path of the training steps (bf16 on the CPU here; fp16 on CUDA is the same code)."""
    from vr import PRM

    table = description_table(CLASSES, _sets(2, 2), [0, 1])
    model = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192, num_prompts=2), table, PRM(3, 4, topk=2))
    x, y = torch.rand(2, 3, 192, 192), torch.tensor([0, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, z = model.forward_with_descriptions(x)
        loss = F.cross_entropy(logits, y)
    model.aggregation.observe(z.detach(), y)
    loss.backward()
    assert z.dtype == torch.bfloat16 and logits.dtype == torch.bfloat16  # the PRM product too, as the reference
    assert torch.isfinite(model.prompts.delta.grad).all() and model.prompts.delta.grad.abs().sum() > 0
    assert int(model.aggregation.statistics().sum()) == 2 * 2
    model.aggregation = PRM(3, 4, topk=2, precise=True)  # LOGIT_MATH precise: promoted to fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).dtype == torch.float32


# ---- first-layer split (vr/clip.py) against the plain path ------------------------------------------------
@pytest.fixture(scope="module")
def encoders(encoder):
    from backbones import load_clip

    return {"test-tiny": encoder, "test-tiny-rn": FrozenCLIP(load_clip("test-tiny-rn"))}


def _assert_close(got, want, rel=1e-5):
    """Agreement to ``rel`` of the largest entry (float rounding of a different summation order)."""
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= rel * float(want.abs().max()), float((got - want).abs().max())


def _logits_and_gradient(encoder, prompts, table, split, chunk=0):
    model = ReprogrammedCLIP(encoder, prompts, table, Mean(), encoder_chunk=chunk, first_layer_split=split)
    assert model.first_layer_split == split
    x = torch.rand(4, 3, prompts.loader_size, prompts.loader_size, generator=torch.Generator().manual_seed(5))
    prompts.zero_grad()
    logits = model(x)
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(6))
    if not hasattr(prompts, "delta"):
        return logits.detach(), None
    (logits * weights).sum().backward()
    grad = prompts.delta.grad.clone()
    return logits.detach(), grad


@pytest.mark.parametrize("backbone", ["test-tiny", "test-tiny-rn"])
@pytest.mark.parametrize("kind", ["padding", "watermark", "none"])
def test_first_layer_split_gives_the_plain_logits_and_gradients(encoders, backbone, kind):
    from vr import build_prompt

    encoder = encoders[backbone]
    v = 3
    prompts = build_prompt(kind, 224, encoder.mean, encoder.std, num_prompts=v, input_size=192, pad=30)
    if hasattr(prompts, "delta"):
        with torch.no_grad():
            prompts.delta.copy_(torch.randn(prompts.delta.shape, generator=torch.Generator().manual_seed(7)))
    table = description_table(CLASSES, _sets(v, 2), [0, 1, 2])
    plain, plain_grad = _logits_and_gradient(encoder, prompts, table, split=False)
    split, split_grad = _logits_and_gradient(encoder, prompts, table, split=True)
    chunked, chunked_grad = _logits_and_gradient(encoder, prompts, table, split=True, chunk=5)
    _assert_close(split, plain)
    _assert_close(chunked, plain)
    if kind != "none":
        assert plain_grad.abs().max() > 0
        _assert_close(split_grad, plain_grad)
        _assert_close(chunked_grad, plain_grad)
    assert isinstance(encoder.model.visual.conv1, torch.nn.Conv2d)  # the tower got its first layer back


def test_first_layer_split_is_refused_where_it_would_not_be_exact(encoder):
    from vr import VisualPrompt

    class Clamped(PaddingPrompt):
        """A padding prompt whose sum is clamped to [0, 1]: not additive."""

        kind = "clamped"
        ADDITIVE = False

        def forward(self, x01):
            b, a = self.pad_before, self.pad_after
            out = (F.pad(x01, (b, a, b, a)).unsqueeze(0) + self.pattern().unsqueeze(1)).clamp(0, 1)
            return self.normalise(out.reshape(-1, 3, self.image_size, self.image_size))

    table = description_table(CLASSES, _sets(1, 2))
    model = ReprogrammedCLIP(encoder, Clamped(224, 192), table, Mean())
    assert not model.first_layer_split
    assert model.first_layer_split_status == "off: the clamped prompt is not additive"
    with pytest.raises(NotImplementedError, match="not additive"):
        VisualPrompt.additive_parts(model.prompts, torch.rand(1, 3, 192, 192))
    assert ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, Mean()).first_layer_split_status == "on"
    off = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, Mean(), first_layer_split=False)
    assert off.first_layer_split_status == "off (option)"

    class Tower(torch.nn.Module):  # an image tower that is neither a ViT nor a ModifiedResNet
        conv1 = torch.nn.Conv2d(3, 4, 16, 16, bias=False)

    fake = FrozenCLIP.__new__(FrozenCLIP)
    fake.model, fake.name = torch.nn.Module(), "fake"
    fake.model.visual = Tower()
    assert "Tower is not one whose forward starts with its first convolution" in fake.first_layer_split_refusal()
    with pytest.raises(ValueError, match="cannot run on fake.*FIRST_LAYER_SPLIT False"):
        fake.encode_image_split(torch.rand(1, 3, 224, 224), None, torch.zeros(1, 3, 1, 1),
                                torch.ones(1, 3, 1, 1), 1)


def test_logits_use_the_references_order_on_half_features(encoder):
    """The references compute ``exp * x_emb @ t_emb``: the features are scaled first, so under fp16 autocast
    the scaled features are rounded to fp16 before the matmul. With explicit half tensors on a CPU."""
    table = description_table(CLASSES, _sets(1, 4))
    reference = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, Mean())
    precise = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, Mean(), scale_first=False)
    gen = torch.Generator().manual_seed(5)
    feats = F.normalize(torch.randn(1, 16, table.embeddings.shape[1], generator=gen), dim=-1).half()
    emb, scale = table.embeddings.half(), encoder.capped_logit_scale
    x = torch.rand(16, 3, 192, 192)
    for model in (reference, precise):
        model.image_features = lambda _: feats  # the (v, B, D) half features autocast would produce
    got, later = reference.description_logits(x), precise.description_logits(x)
    assert got.dtype == torch.float16
    assert torch.equal(got.reshape(16, -1), (scale * feats[0]) @ emb.t())
    assert torch.equal(later.reshape(16, -1), scale * (feats[0] @ emb.t()))
    assert not torch.equal(got, later)  # the order changes the fp16 logits


def test_logit_scale_is_capped_like_the_references_without_touching_clip(tiny_clip):
    """The references clamp logit_scale to 4.6052 after every step; OpenAI's fp16 checkpoints store
    4.60546875 (scale 100.030). The VR logits use the capped scale; CLIP's parameter and CoOp's scale stay."""
    import copy

    backbone = copy.deepcopy(tiny_clip)
    with torch.no_grad():
        backbone.model.logit_scale.fill_(4.60546875)
    encoder = FrozenCLIP(backbone)
    capped = torch.tensor(4.6052).exp()
    assert encoder.capped_logit_scale == capped and float(capped) == pytest.approx(100.003, abs=1e-3)
    assert float(encoder.logit_scale) == pytest.approx(100.030, abs=1e-3)  # CoOp: the stored value
    table = description_table(CLASSES, _sets(1, 2))
    model = ReprogrammedCLIP(encoder, PaddingPrompt(224, 192), table, Mean())
    x = torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        z = model.description_logits(x)
        feats = model.image_features(x)[0]
    assert torch.allclose(z.reshape(2, -1), (capped * feats) @ table.embeddings.t(), atol=1e-5, rtol=0)
    assert not torch.allclose(z.reshape(2, -1), (encoder.logit_scale * feats) @ table.embeddings.t(),
                              atol=1e-3, rtol=0)
    assert float(backbone.model.logit_scale) == 4.60546875  # the frozen model is never modified
