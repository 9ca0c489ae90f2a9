"""Zeroth-order optimisers: a step from loss VALUES only (the black box returns no gradient).

Both are ``torch.optim.Optimizer`` subclasses, so a trainer registers, checkpoints and resumes them like any
optimiser. ``step(closure, generator)``: ``closure()`` returns the loss (a float or 0-d tensor) at the
parameters' CURRENT values; the optimiser moves the parameters to the perturbed points, calls it, restores
them and applies the update. Every closure call is one black-box evaluation of the batch
(``evaluations_per_step``). ``generator`` draws the directions (the trainer seeds it per step, so a resumed
run draws the same ones). ``masks`` (optional, one per parameter): directions live on the entries that change
the output (a padding prompt's frame), and d counts those entries only.

RGF (BAR, Tsai et al. ICML'20): q directions u_j ~ N(0, I) scaled to the unit sphere;
    g = (d / q) * sum_j [L(w + beta u_j) - L(w)] / beta * u_j;      w <- w - lr * g     (q + 1 evaluations)
SPSA-GC (BlackVIP, Oh et al. CVPR'23, as its official vpour.py/blackvip.py): step k = 1, 2, ...,
    a_k = a / (k + o)^alpha,  c_k = c / k^gamma,  Delta: entries uniform in [0.5, 1] with a random sign,
    g = mean over sp_avg draws of [L(w + c_k Delta) - L(w - c_k Delta)] / (2 c_k Delta)   (2 sp_avg evaluations)
    m = beta m + g (m = g at the first step);  w <- w - a_k (g + beta m)
"""
import math

import torch

from .blackbox import QueryLedger


class ZerothOrderOptimizer(torch.optim.Optimizer):
    """Shared parts: the flat view of the parameters, masks, the ledger in the state, loss of the first call."""

    def __init__(self, params, defaults, masks=None, ledger=None):
        super().__init__(params, defaults)
        self.params = [p for g in self.param_groups for p in g["params"]]
        self.masks = [None] * len(self.params) if masks is None else list(masks)
        if len(self.masks) != len(self.params):
            raise ValueError(f"{len(self.masks)} masks for {len(self.params)} parameters.")
        self.ledger = ledger if ledger is not None else QueryLedger()
        self.state["zo"] = {"step": 0}

    @property
    def dimension(self) -> int:
        """d: the number of entries the directions live on."""
        return sum(int(p.numel() if m is None else m.expand_as(p).sum())
                   for p, m in zip(self.params, self.masks, strict=False))

    def _draw(self, draw, generator):
        """One direction per parameter (masked), drawn on the CPU generator, moved to the parameter."""
        out = []
        for p, m in zip(self.params, self.masks, strict=False):
            u = draw(p.shape, generator).to(p.device, p.dtype)
            out.append(u if m is None else u * m.to(u))
        return out

    @torch.no_grad()
    def _shift(self, direction, scale):
        for p, u in zip(self.params, direction, strict=False):
            p.add_(u, alpha=scale)

    def _eval(self, closure, direction=None, scale=0.0):
        if direction is not None:
            self._shift(direction, scale)
        try:
            value = closure()
            return float(value.detach() if torch.is_tensor(value) else value)
        finally:
            if direction is not None:
                self._shift(direction, -scale)

    def state_dict(self):
        state = super().state_dict()
        state["ledger"] = self.ledger.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ledger = state_dict.pop("ledger", None)
        super().load_state_dict(state_dict)
        if ledger is not None:
            self.ledger.load_state_dict(ledger)

    @property
    def steps_done(self) -> int:
        return int(self.state["zo"]["step"])


class RGF(ZerothOrderOptimizer):
    """Randomised gradient-free estimate + plain step (module docstring); lr is the group's ``lr``."""

    def __init__(self, params, lr, q=5, beta=0.01, masks=None, ledger=None):
        if int(q) < 1 or beta <= 0:
            raise ValueError(f"RGF needs q >= 1 directions and beta > 0, got q={q}, beta={beta}.")
        super().__init__(params, {"lr": float(lr)}, masks, ledger)
        self.q, self.beta = int(q), float(beta)

    @property
    def evaluations_per_step(self) -> int:
        return self.q + 1

    def directions(self, generator):
        u = self._draw(lambda shape, g: torch.randn(shape, generator=g), generator)
        norm = math.sqrt(sum(float((x.double() ** 2).sum()) for x in u))
        return [x / norm for x in u]

    def estimate(self, closure, generator):
        """(gradient estimate per parameter, L(w))."""
        base = self._eval(closure)
        grad = [torch.zeros_like(p) for p in self.params]
        scale = self.dimension / self.q
        for _ in range(self.q):
            u = self.directions(generator)
            diff = (self._eval(closure, u, self.beta) - base) / self.beta
            for g, x in zip(grad, u, strict=False):
                g.add_(x, alpha=scale * diff)
        return grad, base

    @torch.no_grad()
    def step(self, closure, generator=None):
        grad, base = self.estimate(closure, generator)
        lr = self.param_groups[0]["lr"]
        for p, g in zip(self.params, grad, strict=False):
            p.add_(g, alpha=-lr)
        self.state["zo"] = {"step": self.steps_done + 1}  # a new dict: a loaded state may share the old
        return base


class SPSAGC(ZerothOrderOptimizer):
    """SPSA with gradient correction (module docstring). ``lr`` is a (the gain numerator)."""

    def __init__(self, params, lr=0.01, c=0.005, alpha=0.4, gamma=0.1, offset=1.0, momentum=0.9, sp_avg=5,
                 masks=None, ledger=None):
        if int(sp_avg) < 1 or c <= 0:
            raise ValueError(f"SPSA-GC needs sp_avg >= 1 and c > 0, got sp_avg={sp_avg}, c={c}.")
        super().__init__(params, {"lr": float(lr)}, masks, ledger)
        self.c, self.alpha, self.gamma, self.offset = float(c), float(alpha), float(gamma), float(offset)
        self.momentum, self.sp_avg = float(momentum), int(sp_avg)

    @property
    def evaluations_per_step(self) -> int:
        return 2 * self.sp_avg

    def gains(self, k):
        """(a_k, c_k) of step k (1-based)."""
        return self.param_groups[0]["lr"] / (k + self.offset) ** self.alpha, self.c / k ** self.gamma

    def perturbation(self, generator):
        def draw(shape, g):
            size = torch.rand(shape, generator=g) * 0.5 + 0.5
            sign = torch.randint(0, 2, shape, generator=g) * 2 - 1
            return size * sign
        return self._draw(draw, generator)

    def estimate(self, closure, generator, c_k):
        """(gradient estimate per parameter, L(w + c_k Delta) of the first draw)."""
        grad = [torch.zeros_like(p) for p in self.params]
        first = None
        for _ in range(self.sp_avg):
            delta = self.perturbation(generator)
            plus = self._eval(closure, delta, c_k)
            minus = self._eval(closure, delta, -c_k)
            first = plus if first is None else first
            diff = (plus - minus) / (2.0 * c_k)
            for g, d, _mask in zip(grad, delta, self.masks, strict=False):
                safe = torch.where(d == 0, torch.ones_like(d), d)  # masked entries: d = 0, estimate 0
                g.add_(torch.where(d == 0, torch.zeros_like(d), diff / safe) / self.sp_avg)
        return grad, first

    @torch.no_grad()
    def step(self, closure, generator=None):
        k = self.steps_done + 1
        a_k, c_k = self.gains(k)
        grad, first = self.estimate(closure, generator, c_k)
        for p, g in zip(self.params, grad, strict=False):
            state = self.state[p]
            if "m" not in state:
                state["m"] = g.clone()
            else:
                state["m"] = state["m"] * self.momentum + g  # not in place: a loaded state may share it
            p.add_(g + self.momentum * state["m"], alpha=-a_k)
        self.state["zo"] = {"step": k}
        return first
