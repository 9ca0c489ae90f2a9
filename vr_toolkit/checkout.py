"""Find the toolkit checkout that a console command runs.

The rule, first match wins:
1. this package's own parent folder, when it is a checkout (an editable install, or a run from the checkout);
2. ``$VR_TOOLKIT_HOME``, which must be a checkout;
3. the nearest folder at or above the current one that is a checkout.
A checkout is a folder holding ``train.py`` and ``trainers/``.
"""
import os

HOME_ENV = "VR_TOOLKIT_HOME"
MARKERS = ("train.py", os.path.join("trainers", "__init__.py"))


class CheckoutNotFound(RuntimeError):
    """No toolkit checkout can be found; the message says how to name one."""


def is_checkout(folder):
    return all(os.path.isfile(os.path.join(folder, m)) for m in MARKERS)


def find_checkout(environ=None, cwd=None):
    """The absolute path of the checkout to run (see the module docstring for the rule)."""
    environ = os.environ if environ is None else environ
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if is_checkout(own):
        return own
    home = environ.get(HOME_ENV, "")
    if home:
        if not is_checkout(home):
            raise CheckoutNotFound(f"${HOME_ENV}={home} is not a vr-toolkit checkout (no train.py and "
                                   f"trainers/ there); set it to the folder you cloned the toolkit into")
        return os.path.abspath(home)
    folder = os.path.abspath(cwd or os.getcwd())
    while True:
        if is_checkout(folder):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            raise CheckoutNotFound(f"no vr-toolkit checkout at or above {os.path.abspath(cwd or os.getcwd())}; "
                                   f"run the command inside the checkout, or set ${HOME_ENV} to it")
        folder = parent
