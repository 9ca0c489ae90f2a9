"""The project's one "did you mean" helper (stdlib only): the known names closest to a mistyped one."""
import difflib
import re


def close_matches(name, choices, n=3, cutoff=0.5):
    """The names in ``choices`` closest to ``name`` (case-insensitive), best first."""
    lowered = {}
    for c in choices:
        lowered.setdefault(str(c).lower(), c)
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[h] for h in hits]


def did_you_mean(name, choices, cutoff=0.5):
    """``' (do you mean "X"?)'`` for the closest name, or "" when none is close."""
    hint = close_matches(name, choices, n=1, cutoff=cutoff)
    return f' (do you mean "{hint[0]}"?)' if hint else ""


def squash(name):
    """A name compared loosely: lower case, letters and digits only ("ViT-B/16" -> "vitb16", "DVP_CLS" -> "dvpcls")."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())
