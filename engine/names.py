"""Name rules shared by every layer (stdlib only): "did you mean" hints, loose comparison, and which keys
can become part of a file name."""
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


_FILE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_file_key(key):
    """Whether ``key`` can name files as it is (``attributes/<key>_des.json``): letters, digits, '_', '-', '.',
    not starting with a separator. The one rule for description keys, whichever layer names them."""
    return isinstance(key, str) and bool(_FILE_KEY.match(key))
