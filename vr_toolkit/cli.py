"""Console commands (pyproject.toml [project.scripts]): each runs one of the checkout's entry scripts.

A command is exactly ``python <script> ARGS`` run in the checkout's interpreter state: the checkout goes on
sys.path of this process only, and the script runs as ``__main__``. The runner commands (vr-run, vr-sweep)
need the checkout as the current folder, as scripts/method.sh and scripts/sweep.sh do, and change to it;
the others keep the current folder, so relative paths mean what they mean in the shell.
"""
import os
import runpy
import sys

from .checkout import CheckoutNotFound, find_checkout

# command -> (script in the checkout, leading arguments, runs in the checkout folder)
COMMANDS = {
    "vr-train": ("train.py", (), False),
    "vr-run": ("scripts/run_one.py", ("method",), True),
    "vr-sweep": ("scripts/run_one.py", ("sweep",), True),
    "vr-table": ("scripts/make_table.py", (), False),
    "vr-predict": ("scripts/predict.py", (), False),
    "vr-catalogue": ("runs/catalogue.py", (), False),
}


def run_command(name, argv=None, environ=None):
    """Run command ``name`` with arguments ``argv``; return its exit status."""
    script, lead, in_checkout = COMMANDS[name]
    try:
        home = find_checkout(environ)
    except CheckoutNotFound as err:
        print(f"ERROR: {name}: {err}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    if in_checkout:
        os.chdir(home)
    path = os.path.join(home, script)
    if home not in sys.path:
        sys.path.insert(0, home)
    sys.argv = [path, *lead, *argv]
    if script.startswith("runs/"):  # a package module: run it as ``python -m`` does, package context included
        target, runner = script[:-3].replace("/", "."), runpy.run_module
    else:
        target, runner = path, runpy.run_path
    try:
        runner(target, run_name="__main__", **({"alter_sys": True} if runner is runpy.run_module else {}))
    except SystemExit as stop:
        return stop.code
    return 0


def _entry(name):
    def main():
        sys.exit(run_command(name))
    main.__name__ = main.__qualname__ = name.replace("-", "_")
    main.__doc__ = f"The {name} command: {COMMANDS[name][0]} of the toolkit checkout."
    return main


train = _entry("vr-train")
run = _entry("vr-run")
sweep = _entry("vr-sweep")
table = _entry("vr-table")
predict = _entry("vr-predict")
catalogue = _entry("vr-catalogue")
