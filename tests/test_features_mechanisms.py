"""The feature baselines' mechanisms against hand computations on tiny tensors (CLIP-Adapter's residual ratio,
Tip-Adapter's affinities and search grid, LP++'s blend and step sizes, the linear probe against scikit-learn,
the text classifier), and the feature files' cache keys."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainers.clip_adapter import AdapterHead
from trainers.hp_search import grid_search, tip_grid
from trainers.linear_probe import fit_logistic, linear_head_from, search_c
from trainers.lpplusplus import BlendHead, init_head, step_sizes
from trainers.tip_adapter import TipCache, search_alpha_beta


# ---- mechanisms, by hand --------------------------------------------------------------------------------
def test_clip_adapter_residual_ratio():
    text = F.normalize(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]), dim=-1)
    head = AdapterHead(text, torch.tensor(10.0), ratio=0.2, reduction=4)  # 4 -> 1 -> 4
    with torch.no_grad():
        head.adapter.fc[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.0]]))
        head.adapter.fc[2].weight.copy_(torch.tensor([[2.0], [0.0], [-1.0], [1.0]]))
    f = torch.tensor([[3.0, 1.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0]])
    # row 0: W1 f = 2 -> ReLU 2 -> W2 = (4, 0, -2, 2) -> ReLU (4, 0, 0, 2); f' = 0.2 * that + 0.8 f
    # row 1: W1 f = -2 -> ReLU 0: the adapter gives 0 and f' = 0.8 f
    expected = torch.tensor([[0.8 + 2.4, 0.8, 0.0, 0.4], [0.8, 2.4, 0.0, 0.0]])
    torch.testing.assert_close(head.blend(f), expected)
    torch.testing.assert_close(head(f), 10.0 * F.normalize(expected, dim=-1) @ text.t())
    assert [k for k, _ in head.named_parameters()] == ["adapter.fc.0.weight", "adapter.fc.2.weight"]
    assert list(head.state_dict()) == ["adapter.fc.0.weight", "adapter.fc.2.weight"]  # text is rebuilt


def test_tip_adapter_affinity_and_logits():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    head = TipCache(text, alpha=2.0, beta=3.0)
    keys = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    head.set_cache(keys, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    f = torch.tensor([[2.0, 0.0]])  # normalised to (1, 0): affinities 1, 0.6, 0
    a = [1.0, np.exp(-3.0 * 0.4), np.exp(-3.0)]
    expected = torch.tensor([[100.0 + 2.0 * a[0], 2.0 * (a[1] + a[2])]], dtype=torch.float32)
    torch.testing.assert_close(head.affinity(F.normalize(f, dim=-1)), torch.tensor([[1.0, 0.6, 0.0]]))
    torch.testing.assert_close(head(f), expected)
    assert set(head.state_dict()) == {"keys", "values", "alpha", "beta"}


def test_tip_adapter_search_grid_and_tie_rule():
    assert tip_grid(2.1, 4) == pytest.approx([0.1, 0.6, 1.1, 1.6])  # the end point 2.1 is excluded
    assert grid_search(lambda x: -abs(x - 2), [0, 1, 3, 2, 2.0]) == (2, 0)  # first best kept on a tie
    # one image whose cache (class 1) fights the text (class 0): alpha beats the text gap only when large
    clip = torch.tensor([[1.0, 0.0]])
    beta, alpha, best = search_alpha_beta(clip, torch.tensor([[1.0]]), torch.tensor([[0.0, 1.0]]),
                                          torch.tensor([1]), betas=[0.5, 1.0], alphas=[0.5, 1.0, 1.5, 2.0])
    assert (beta, alpha, best) == (0.5, 1.5, 100.0)  # the first (beta outer, alpha inner) with 1.5 > 1


def test_lpplusplus_blend_init_and_step_sizes():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    head = BlendHead(text)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        head.linear.bias.copy_(torch.tensor([0.5, -0.5]))
        head.alpha.copy_(torch.tensor([3.0, 4.0]))
    f = torch.tensor([[0.0, 5.0]])  # normalised to (0, 1)
    # class 0: (1, 2).(0, 1) + 0.5 + 3 * 0 = 2.5; class 1: -1 - 0.5 + 4 * 1 = 2.5 + 0
    torch.testing.assert_close(head(f), torch.tensor([[2.5, 2.5]]))

    feats = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    init_head(head, feats, labels, scale=250.0)
    torch.testing.assert_close(head.linear.weight, torch.tensor([[1.6, 0.8], [0.0, 1.0]]))  # class sums
    # class means of f . t_y: class 0 (1 + 0.6) / 2 = 0.8, class 1: 1 -> 250 * 0.9
    torch.testing.assert_close(head.alpha, torch.full((2,), 225.0))
    lr_w, lr_alpha = step_sizes(feats, text)
    gram = np.array([[1.36, 0.48], [0.48, 1.64]])  # F^T F
    assert lr_w == pytest.approx(12.0 / np.linalg.eigvalsh(gram).max())
    assert lr_alpha == pytest.approx(3.0 / (4.0 * max(1.0 + 0.36, 0.64 + 1.0)))


@pytest.mark.parametrize("num_classes", [2, 3])
def test_linear_head_predicts_as_sklearn(num_classes):
    rng = np.random.RandomState(0)
    x = rng.randn(30, 5).astype(np.float32)
    y = rng.randint(0, num_classes, 30)
    test = rng.randn(200, 5).astype(np.float32)
    clf = fit_logistic(x, y, 0.3)
    head = linear_head_from(clf, num_classes + 1, 5)  # one class absent from the labels: never predicted
    with torch.no_grad():
        ours = head(torch.as_tensor(test)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(ours, clf.predict(test))


def test_c_search_follows_lpclip_bisection():
    rng = np.random.RandomState(1)
    x, y = rng.randn(24, 4), np.repeat([0, 1, 2], 8)
    vx, vy = rng.randn(12, 4), np.repeat([0, 1, 2], 4)
    _, c, trace = search_c((x, y), (vx, vy), steps=3)
    assert [t[0] for t in trace[:7]] == [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6]
    peak = trace[int(np.argmax([t[1] for t in trace[:7]]))][0]
    assert trace[7][0] == pytest.approx(peak / 10) and trace[8][0] == pytest.approx(peak * 10)
    left, right = np.log10(peak) - 1, np.log10(peak) + 1
    for step in range(3):  # replay the bracket rule on the recorded accuracies
        (cl, al), (cr, ar) = trace[7 + 2 * step], trace[8 + 2 * step]
        assert (cl, cr) == pytest.approx((10 ** left, 10 ** right))
        mid = (left + right) / 2
        kept, left, right = (cr, mid, right) if al < ar else (cl, left, mid)
    assert c == pytest.approx(kept)


def test_text_classifier_is_the_normalised_mean_of_normalised_template_embeddings(tiny_clip):
    from trainers.features import TIP_IMAGENET_TEMPLATES, text_classifier
    from vr.clip import FrozenCLIP

    encoder = FrozenCLIP(tiny_clip)
    weights = text_classifier(encoder, ["sea_lion", "red"], TIP_IMAGENET_TEMPLATES)
    with torch.no_grad():
        emb = tiny_clip.model.encode_text(tiny_clip.tokenizer([t.format("sea lion") for t in TIP_IMAGENET_TEMPLATES]))
    expected = F.normalize(F.normalize(emb.float(), dim=-1).mean(dim=0), dim=-1)
    torch.testing.assert_close(weights[0], expected, rtol=1e-5, atol=1e-6)
    assert weights.shape == (2, emb.shape[1])


def test_feature_files_are_keyed_by_the_weights_and_the_transform():
    """A rerun in the same folder with other weights (or another transform) must not reuse features."""
    from types import SimpleNamespace

    import torchvision.transforms as T

    from engine import get_cfg_default
    from trainers.features import _fingerprint

    cfg = get_cfg_default()
    encoder = SimpleNamespace(name="ViT-B/16")
    items = [SimpleNamespace(impath="/a.png", label=0)]
    tfm = T.Compose([T.Resize(224), T.Normalize((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))])
    key = _fingerprint(cfg, encoder, items, tfm, 1, 0)
    assert key == _fingerprint(cfg, encoder, items, tfm, 1, 0)
    other = cfg.clone()
    other.MODEL.BACKBONE.WEIGHTS = "/elsewhere/other.pt"
    assert _fingerprint(other, encoder, items, tfm, 1, 0) != key
    tfm2 = T.Compose([T.Resize(224), T.Normalize((0.4, 0.5, 0.5), (0.2, 0.2, 0.2))])
    assert _fingerprint(cfg, encoder, items, tfm2, 1, 0) != key
