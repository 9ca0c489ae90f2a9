"""Gaussian weighted prompt aggregation (GPA, PromptSRC, ICCV 2023): a running sum over epochs of the
learned tensors weighted by g_e = N(e; mu, sigma^2), e = 1 .. E, normalised to sum 1; after the last epoch
the sum replaces the learned tensors (so the last checkpoint and the test use the aggregate).

The sums are buffers of a module that lives inside the prompt learner, so they are in every epoch's
checkpoint and a resumed run (kill -9 included) continues the same sum. Only the learned parameters are
aggregated: the official code sums the whole model state_dict (frozen CLIP included, in fp16), whose frozen
part comes back as itself up to fp16 rounding since the weights sum to 1.
"""
import math

import torch
import torch.nn as nn


def gaussian_weights(epochs, mean, std):
    """[g_1 .. g_E]: the normal density at e = 1 .. E, divided by its sum (as the official code)."""
    if std <= 0:
        raise ValueError(f"the GPA standard deviation must be positive (got {std}).")
    dens = [math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)) for e in range(1, epochs + 1)]
    total = sum(dens)
    if total == 0.0:
        raise ValueError(f"the GPA weights N(e; {mean}, {std}^2) underflow to 0 for every epoch 1 .. {epochs}: "
                         f"set GPA_MEAN within the epochs or widen GPA_STD.")
    return [d / total for d in dens]


class GaussianAggregate(nn.Module):
    """Running weighted sums of ``params`` (name -> Parameter); ``epochs_added`` counts the epochs summed."""

    def __init__(self, params, weights):
        super().__init__()
        self.__dict__["params"] = dict(params)  # not submodules: the learner owns them
        self.weights = list(weights)
        self.keys = {name: "sum_" + name.replace(".", "_") for name in self.params}
        for name, p in self.params.items():
            self.register_buffer(self.keys[name], torch.zeros_like(p.detach(), dtype=torch.float32))
        self.register_buffer("epochs_added", torch.zeros((), dtype=torch.long))

    def add(self, epoch):
        """Add g_epoch times the current values (epoch counts from 1; each epoch once, in order)."""
        if int(self.epochs_added) != epoch - 1:
            raise RuntimeError(f"GPA: epoch {epoch} added after {int(self.epochs_added)} epochs; the running sum "
                               f"would be wrong (resume from a checkpoint of this run).")
        g = self.weights[epoch - 1]
        with torch.no_grad():
            for name, p in self.params.items():
                getattr(self, self.keys[name]).add_(p.detach().float() * g)
        self.epochs_added.fill_(epoch)

    def load_into_params(self):
        """Replace the learned tensors by the aggregate (after the last epoch)."""
        if int(self.epochs_added) != len(self.weights):
            raise RuntimeError(f"GPA: {int(self.epochs_added)} of {len(self.weights)} epochs summed.")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(getattr(self, self.keys[name]).to(p.dtype))
