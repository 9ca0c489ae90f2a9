"""Which engine backs the project: the real `dassl` package or the builtin implementation.

ENGINE_BACKEND=dassl    use Dassl (fails clearly if it is not importable)
ENGINE_BACKEND=builtin  use the project's own engine
ENGINE_BACKEND=auto     (default) Dassl when `import dassl` works, else builtin
"""
import importlib.util
import os

CHOICES = ("auto", "dassl", "builtin")


def select_backend():
    choice = os.environ.get("ENGINE_BACKEND", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"ENGINE_BACKEND={choice!r} is not one of {CHOICES}")
    if choice == "builtin":
        return "builtin"
    has_dassl = importlib.util.find_spec("dassl") is not None
    if choice == "dassl" and not has_dassl:
        raise ImportError("ENGINE_BACKEND=dassl but the `dassl` package is not importable. Install "
                          "Dassl.pytorch (github KaiyangZhou/Dassl.pytorch) or set ENGINE_BACKEND=builtin.")
    return "dassl" if has_dassl else "builtin"
