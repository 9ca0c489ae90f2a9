"""The entry layer's one place that imports the plugin packages, so that their trainers, datasets and
config keys register: the project's own (datasets, trainers) and the modules named in
``$VR_PLUGINS`` (comma-separated), without editing any file. train.py, the run loader, benchmarks and
the tests call :func:`load_plugins` before building a config; the engine never imports plugins.
"""
import importlib
import os

PLUGINS_ENV = "VR_PLUGINS"
PROJECT_PACKAGES = ("datasets", "trainers")


class PluginImportError(ValueError):
    """A module named in $VR_PLUGINS does not import."""


def plugin_modules(environ=None):
    """The module names listed in $VR_PLUGINS, in order."""
    raw = (os.environ if environ is None else environ).get(PLUGINS_ENV, "")
    return [m.strip() for m in raw.split(",") if m.strip()]


def load_plugins(environ=None):
    """Import the project's plugin packages and every $VR_PLUGINS module (each only once)."""
    for name in PROJECT_PACKAGES:
        importlib.import_module(name)
    for name in plugin_modules(environ):
        try:
            importlib.import_module(name)
        except Exception as err:  # a missing module, or one that fails while registering
            kind = "" if isinstance(err, ImportError) else f"{type(err).__name__}: "
            raise PluginImportError(f"{PLUGINS_ENV} names the module {name!r}, which cannot be imported: "
                                    f"{kind}{err}") from err


def project_cfg():
    """Dassl's default config with every registered project key (plugins loaded first), unfrozen."""
    import engine

    load_plugins()
    return engine.extend_cfg(engine.get_cfg_default())
