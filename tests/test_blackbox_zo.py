"""The black box (vr/blackbox.py) and the zeroth-order optimisers (vr/zeroth_order.py), without training.

- BlackBoxCLIP answers scores only: no model, parameter or gradient is reachable through it, backprop
  through its answer fails, every image query is counted and the budget refuses a query past it;
- RGF and SPSA-GC are unbiased on a quadratic (the mean of many estimates is within 4 standard errors of
  the known gradient, the variances derived in the test) and converge on it; on a padding prompt the RGF
  estimate points along the autograd gradient and is exactly 0 outside the frame;
- the number of loss evaluations per step is q + 1 (RGF) and 2 sp_avg (SPSA-GC), and the optimiser's state
  (momentum, step, ledger) round-trips through state_dict.
"""
import math

import pytest
import torch

from vr import FrozenCLIP, PaddingPrompt
from vr.blackbox import BlackBoxAccessError, BlackBoxCLIP, QueryBudgetSpent, QueryLedger, scores_to_logits
from vr.zeroth_order import RGF, SPSAGC


@pytest.fixture(scope="module")
def frozen():
    from backbones import load_clip
    return FrozenCLIP(load_clip("test-tiny"))


def images(frozen, n=3, seed=0):
    return torch.randn(n, 3, frozen.image_size, frozen.image_size, generator=torch.Generator().manual_seed(seed))


TEXTS = [["a red square"], ["a green square"], ["a blue thing", "a blue square"]]


def test_the_black_box_answers_scores_and_hides_the_model(frozen):
    box = BlackBoxCLIP(frozen)
    for name in ("model", "backbone", "parameters", "encode_image", "_frozen", "__dict__", "visual"):
        with pytest.raises(BlackBoxAccessError, match="not reachable"):
            getattr(box, name)
    x = images(frozen).requires_grad_(True)
    scores = box.query(x, TEXTS)
    assert scores.shape == (3, 3) and not scores.requires_grad and scores.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        scores.sum().backward()
    assert x.grad is None and all(p.grad is None for p in frozen.model.parameters())
    # the scores are CLIP's: the capped logit scale x cosine of the image and the mean text embedding
    feats = frozen.encode_image(x.detach())
    emb = torch.nn.functional.normalize(torch.stack([frozen.encode_text(t).mean(0) for t in TEXTS]), dim=-1)
    assert torch.allclose(scores, frozen.capped_logit_scale * feats @ emb.t(), atol=1e-4)


def test_every_query_is_counted_and_the_budget_refuses_past_it(frozen):
    ledger = QueryLedger(budget=10)
    box = BlackBoxCLIP(frozen, ledger)
    box.query(images(frozen, 4), TEXTS)
    ledger.epoch = 1
    box.query(images(frozen, 6), TEXTS)
    box.query(images(frozen, 5), TEXTS, phase="eval")  # evaluation queries are not charged to the budget
    with pytest.raises(QueryBudgetSpent, match="budget of 10"):
        box.query(images(frozen, 1), TEXTS)
    rec = ledger.record()
    assert rec["train_image_queries"] == 10 and rec["train_image_queries_per_epoch"] == [4, 6]
    assert rec["eval_image_queries_this_process"] == 5 and rec["image_text_pairs"] == 15 * 3
    assert rec["text_queries"] == 4  # the text set is embedded once (4 strings)


@pytest.mark.parametrize("output", ["probs", "topk"])
def test_probabilities_and_top_k(frozen, output):
    logits = BlackBoxCLIP(frozen).query(images(frozen), TEXTS)
    scores = BlackBoxCLIP(frozen, output=output, topk=2).query(images(frozen), TEXTS)
    probs = logits.softmax(-1)
    if output == "probs":
        assert torch.allclose(scores, probs, atol=1e-6)
    else:
        assert ((scores > 0).sum(-1) == 2).all() and torch.allclose(scores.max(-1).values, probs.max(-1).values)
    assert torch.equal(scores_to_logits(scores, output).argmax(-1), logits.argmax(-1))


# ---- zeroth-order estimators on a quadratic L(w) = 0.5 w'Aw + b'w, gradient Aw + b --------------------------
D = 12


def quadratic(seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(D, D, generator=g, dtype=torch.float64)
    a = m @ m.t() / D + torch.eye(D, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    w = torch.nn.Parameter(torch.randn(D, generator=g, dtype=torch.float64))
    return w, (lambda: 0.5 * w @ a @ w + b @ w), (a @ w + b).detach(), a, b


def mean_estimate(opt, closure, n, **kw):
    gen = torch.Generator().manual_seed(1)
    return torch.stack([opt.estimate(closure, gen, **kw)[0][0] for _ in range(n)]).mean(0)


def test_rgf_is_unbiased_within_its_variance():
    w, loss, grad, _, _ = quadratic()
    q, n = 3, 1500
    opt = RGF([w], lr=0.1, q=q, beta=1e-6)
    est = mean_estimate(opt, loss, n)
    # u uniform on the sphere: E[d (g.u) u] = g, total variance (d - 1)|g|^2 per direction
    var = (D - 1) * float(grad @ grad) / (q * n)
    assert float(((est - grad) ** 2).sum()) < 4 * var, (est, grad)
    assert float(((est - grad) ** 2).sum()) > 0.05 * var  # it is an estimate, not the gradient


def test_spsa_is_unbiased_within_its_variance():
    w, loss, grad, _, _ = quadratic()
    sp_avg, n = 2, 1500
    opt = SPSAGC([w], c=1e-3, sp_avg=sp_avg)
    est = mean_estimate(opt, loss, n, c_k=1e-3)
    # Delta_i uniform in +-[0.5, 1]: E[Delta^2] = 7/12, E[1/Delta^2] = 2, so Var_i = (7/6)(|g|^2 - g_i^2)
    var = 7.0 / 6.0 * (D - 1) * float(grad @ grad) / (sp_avg * n)
    assert float(((est - grad) ** 2).sum()) < 4 * var, (est, grad)


@pytest.mark.parametrize("make,steps", [(lambda w: RGF([w], lr=0.02, q=4, beta=1e-4), 600),
                                        (lambda w: SPSAGC([w], lr=0.1, c=0.01, alpha=0.4, gamma=0.1,
                                                          momentum=0.5, sp_avg=2), 600)])
def test_the_optimisers_converge_on_the_quadratic(make, steps):
    w, loss, _, a, b = quadratic()
    optimum = -torch.linalg.solve(a, b)
    gap0 = float(((w.detach() - optimum) ** 2).sum())
    opt, gen = make(w), torch.Generator().manual_seed(0)
    for _ in range(steps):
        opt.step(loss, gen)
    assert float(((w.detach() - optimum) ** 2).sum()) < 0.01 * gap0


@pytest.mark.parametrize("make,evaluations", [(lambda w: RGF([w], lr=0.1, q=4), 5),
                                              (lambda w: SPSAGC([w], sp_avg=3), 6)])
def test_evaluations_per_step_and_state_round_trip(make, evaluations):
    w, loss, _, _, _ = quadratic()
    opt = make(w)
    calls = []
    opt.ledger.train_per_epoch = {0: 7}

    def closure():
        calls.append(1)
        return loss()
    opt.step(closure, torch.Generator().manual_seed(0))
    opt.step(closure, torch.Generator().manual_seed(1))
    assert len(calls) == 2 * evaluations == 2 * opt.evaluations_per_step
    w2 = torch.nn.Parameter(w.detach().clone())
    other, a, b = make(w2), *quadratic()[3:]
    other.load_state_dict(opt.state_dict())
    assert other.steps_done == 2 and other.ledger.train_per_epoch == {0: 7}
    if isinstance(opt, SPSAGC):
        assert torch.equal(other.state[w2]["m"], opt.state[w]["m"])
    opt.step(closure, torch.Generator().manual_seed(5))
    other.step(lambda: 0.5 * w2 @ a @ w2 + b @ w2, torch.Generator().manual_seed(5))
    assert torch.equal(w, w2)  # a resumed optimiser takes the same step


def test_rgf_on_a_padding_prompt_follows_the_gradient_inside_the_frame():
    torch.manual_seed(0)
    prompt = PaddingPrompt(image_size=32, input_size=24).double()
    x = torch.rand(4, 3, 24, 24, dtype=torch.float64)
    target = torch.randn(4, 3, 32, 32, dtype=torch.float64)

    def loss():
        return ((prompt(x) - target) ** 2).mean() * 1000

    loss().backward()
    grad = prompt.delta.grad.clone()
    mask = prompt.mask.expand_as(prompt.delta)
    opt = RGF([prompt.delta], lr=0.1, q=50, beta=1e-5, masks=[mask])
    assert opt.dimension == int(mask.sum()) == prompt.num_trainable_entries()
    with torch.no_grad():
        est = mean_estimate(opt, loss, 40)
    assert torch.count_nonzero(est * (1 - mask)) == 0  # nothing outside the frame
    cos = float((est * grad).sum() / (est.norm() * grad.norm()))
    # expected cosine ~ 1 / sqrt(1 + (d - 1) / (q n)) = 0.69 for d = 1344, q n = 2000
    assert cos > 0.55, cos
    assert math.isfinite(cos)
