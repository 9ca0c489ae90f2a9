"""Which engine backs the project: the real `dassl` package or the builtin implementation.

ENGINE_BACKEND=dassl    use Dassl (fails clearly if it is not importable)
ENGINE_BACKEND=builtin  use the project's own engine
ENGINE_BACKEND=auto     (default) Dassl when it imports, else builtin

"Imports" means the Dassl modules the engine re-exports import, not just the top-level package: Dassl
0.6.3 pulls in tensorboard, pandas and wilds on import, and a half-installed Dassl should not silently
become the backend of an `auto` run only to crash a moment later.
"""
import importlib
import importlib.util
import os
import warnings

ENV_VAR = "ENGINE_BACKEND"
CHOICES = ("auto", "dassl", "builtin")
# every Dassl module engine/__init__.py imports names from
DASSL_MODULES = ("dassl.config", "dassl.data", "dassl.data.data_manager", "dassl.data.datasets",
                 "dassl.data.samplers", "dassl.data.transforms", "dassl.engine", "dassl.evaluation",
                 "dassl.metrics", "dassl.optim", "dassl.utils")
DASSL_INSTALL_HINT = ("Put Dassl.pytorch (github KaiyangZhou/Dassl.pytorch) on PYTHONPATH and install what it "
                      "imports: `pip install tensorboard pandas` and `pip install --no-deps wilds==1.2.2`")


def requested_backend(environ=None):
    """The normalised value of ENGINE_BACKEND ("auto" when unset or empty); ValueError if invalid."""
    environ = os.environ if environ is None else environ
    raw = environ.get(ENV_VAR, "")
    choice = raw.strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"{ENV_VAR}={raw!r} is not a valid engine backend. Set it to one of "
                         f"{', '.join(CHOICES)} (or unset it for auto).")
    return choice


def dassl_import_problem():
    """None when Dassl's modules import; otherwise a sentence saying what is wrong."""
    if importlib.util.find_spec("dassl") is None:
        return "the `dassl` package is not importable"
    for name in DASSL_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # a missing dependency, or a Dassl that does not load on this torch
            return f"`import {name}` failed ({type(err).__name__}: {err})"
    return None


def select_backend(environ=None):
    """Return "dassl" or "builtin" following ENGINE_BACKEND (see the module docstring)."""
    choice = requested_backend(environ)
    if choice == "builtin":
        return "builtin"
    problem = dassl_import_problem()
    if problem is None:
        return "dassl"
    if choice == "dassl":
        raise ImportError(f"{ENV_VAR}=dassl but {problem}. {DASSL_INSTALL_HINT}; or set {ENV_VAR}=builtin "
                          f"(or auto) to use the project's own engine.")
    if importlib.util.find_spec("dassl") is not None:
        warnings.warn(f"{ENV_VAR}=auto: Dassl is installed but {problem}; using the builtin engine. "
                      f"{DASSL_INSTALL_HINT}, or set {ENV_VAR}=builtin to silence this warning.", stacklevel=2)
    return "builtin"
