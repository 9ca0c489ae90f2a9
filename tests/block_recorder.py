"""A recorder of what each transformer block of an open_clip tower receives and returns (forward hooks),
shared by the deep-prompt tests (here, not imported from another test module)."""


class BlockInputs:
    """Records each block's input and output (open_clip's blocks are called as block(x, attn_mask=...))."""

    def __init__(self, transformer):
        self.inputs, self.outputs = {}, {}
        self.handles = []
        for j, block in enumerate(transformer.resblocks):
            self.handles.append(block.register_forward_pre_hook(
                lambda mod, args, j=j: self.inputs.__setitem__(j, args[0].detach().clone())))
            self.handles.append(block.register_forward_hook(
                lambda mod, args, out, j=j: self.outputs.__setitem__(j, out.detach().clone())))

    def remove(self):
        for h in self.handles:
            h.remove()
