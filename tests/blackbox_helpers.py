"""Shared by the black-box tests: the model a black box hides, dug out on purpose to compare against."""
import torch.nn as nn


def hidden_clip(box):
    """The model inside the box, dug out of its closure (only this test does that)."""
    functions = [object.__getattribute__(box, "_query")]
    while functions:
        for cell in functions.pop().__closure__ or ():
            inner = cell.cell_contents
            if type(inner).__name__ == "function":
                functions.append(inner)
            elif isinstance(getattr(inner, "model", None), nn.Module):
                return inner.model
    raise AssertionError("no model in the closure")
