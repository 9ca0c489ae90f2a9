"""open_clip tokenizers, built once per process and shared.

Building open_clip's BPE tokenizer takes about 0.2 s (it reads and indexes 49k merges); the project builds a
backbone many times in one process (tests, base-to-new, evaluation), and a tokenizer holds nothing that
depends on the model it serves (its word cache only memoises the same encoding), so one instance per name
gives the same tokens.
"""
import functools

import open_clip


@functools.cache
def clip_tokenizer(model_name: str):
    """``open_clip.get_tokenizer(model_name)``, built on the first call."""
    return open_clip.get_tokenizer(model_name)
