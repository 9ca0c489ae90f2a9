"""Read the project's config yamls with the standard library (the runner must not need PyYAML).

Supports what configs/ uses: nested block mappings, scalars (plain, quoted), flow lists of
scalars and block lists of scalars, comments. Scalars resolve as PyYAML's safe_load does (YAML 1.1:
``1e-3`` is a string, ``on`` a bool). tests/test_runs_layout.py checks that every shipped config
reads exactly as yaml.safe_load reads it. Anything else is an error naming the file and line.
"""
import json
import re

_BOOL = {v: True for v in ("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")}
_BOOL.update({v: False for v in ("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")})
_NULL = ("", "~", "null", "Null", "NULL")
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


class YamlSubsetError(ValueError):
    """A yaml construct outside the subset the runner reads."""


def _unquoted(text):
    """(index, character) of every character of ``text`` outside a quoted string (the quotes excluded)."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        else:
            yield i, ch


def _strip_comment(line):
    for i, ch in _unquoted(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _split_flow(text):
    items, start = [], 0
    for i, ch in _unquoted(text):
        if ch in "[]{}":
            raise YamlSubsetError("nested flow collections")
        if ch == ",":
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    items = [item.strip() for item in items]
    return [] if items == [""] else items


def scalar(text):
    """One plain, quoted or flow-list value as yaml.safe_load resolves it."""
    text = text.strip()
    if text == "{}":
        return {}
    if text.startswith("[") and text.endswith("]"):
        return [scalar(item) for item in _split_flow(text[1:-1])]
    if text[:1] in "{&*!|>%@`":
        raise YamlSubsetError(f"unsupported value {text!r}")
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return json.loads(text)
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text.replace("_", ""))
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text.replace("_", ""))
    if text.lower() in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text.lower()]
    return text


def _lines(text):
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if line.strip():
            if "\t" in line[: len(line) - len(line.lstrip())]:
                raise YamlSubsetError(f"line {number}: tab indentation")
            yield number, len(line) - len(line.lstrip(" ")), line.strip()


def _block(lines, pos, indent):
    """Parse the mapping or list whose items sit at ``indent``; returns (value, next position)."""
    if lines[pos][2].startswith("- ") or lines[pos][2] == "-":
        items = []
        while pos < len(lines) and lines[pos][1] == indent and lines[pos][2][:1] == "-":
            number, _, content = lines[pos]
            item = content[1:].strip()
            if ":" in item.split("#")[0] and not item.startswith(("'", '"', "[")):
                raise YamlSubsetError(f"line {number}: mappings inside lists")
            items.append(scalar(item))
            pos += 1
        return items, pos
    mapping = {}
    while pos < len(lines) and lines[pos][1] == indent:
        number, _, content = lines[pos]
        key, sep, rest = content.partition(":")
        if not sep or (rest and rest[0] not in " "):
            raise YamlSubsetError(f"line {number}: expected KEY: VALUE, got {content!r}")
        key = key.strip().strip("\"'")
        pos += 1
        if rest.strip():
            mapping[key] = scalar(rest)
        elif pos < len(lines) and lines[pos][1] > indent:
            mapping[key], pos = _block(lines, pos, lines[pos][1])
        elif pos < len(lines) and lines[pos][1] == indent and lines[pos][2][:1] == "-":
            mapping[key], pos = _block(lines, pos, indent)
        else:
            mapping[key] = None
    if pos < len(lines) and lines[pos][1] > indent:
        raise YamlSubsetError(f"line {lines[pos][0]}: unexpected indentation")
    return mapping, pos


def load(path):
    """The mapping in a config yaml; YamlSubsetError (with the path) for anything unsupported."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = list(_lines(text))
    if not lines:
        return {}
    if len(lines) == 1 and lines[0][2] == "{}":
        return {}
    try:
        value, pos = _block(lines, 0, lines[0][1])
        if pos != len(lines):
            raise YamlSubsetError(f"line {lines[pos][0]}: indentation goes back past the first key")
    except (YamlSubsetError, ValueError) as err:
        raise YamlSubsetError(f"{path}: {err}") from None
    return value
