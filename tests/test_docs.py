"""The README and docs/ pages say only what the code does: every link resolves, every command they show names
a script or module that exists, every ``--flag`` they pass is one that command defines, and every config key
they set is a key of the project's config tree. The README stays a front door (at most 200 lines)."""
import os
import re
import shlex

import pytest

from tests.conftest import REPO

DOC_FILES = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(REPO, "docs"))
                                   if f.endswith(".md"))
README_MAX_LINES = 200
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def read(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


def shell_blocks(text):
    """The bodies of the ```bash / ```sh / plain ``` code blocks of a markdown text."""
    block, lang = None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if block is None:
                block, lang = [], line[3:].strip()
            else:
                if lang in ("", "bash", "sh"):
                    yield "\n".join(block)
                block = None
        elif block is not None:
            block.append(line)


def commands(rel):
    """The shell command lines of a page's code blocks (continuations joined, comments dropped)."""
    for block in shell_blocks(read(rel)):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                yield line


def words(line):
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def target(tokens):
    """(the file that defines the command's flags, index after the command) for a project command line."""
    tokens = [t for t in tokens if not re.match(r"^[A-Z_]+=", t)]  # leading VAR=value assignments
    for i, tok in enumerate(tokens):
        if tok in ("python", "python3") and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            if nxt == "-m" and i + 2 < len(tokens):
                if not os.path.isdir(os.path.join(REPO, tokens[i + 2].split(".")[0])):
                    return None, []  # not the project's module (pytest, venv, pip)
                mod = tokens[i + 2].replace(".", os.sep)
                for cand in (mod + ".py", os.path.join(mod, "__main__.py")):
                    if os.path.exists(os.path.join(REPO, cand)):
                        return cand, tokens[i + 3:]
                return tokens[i + 2] + " (module)", tokens[i + 3:]
            if nxt.endswith(".py") and (nxt.startswith("scripts/") or nxt == "train.py"):
                return nxt, tokens[i + 2:]
        if tok == "bash" and i + 1 < len(tokens) and tokens[i + 1].startswith("scripts/"):
            return tokens[i + 1], tokens[i + 2:]
    return None, []


def project_command_lines():
    for rel in DOC_FILES:
        for line in commands(rel):
            path, rest = target(words(line))
            if path is not None:
                yield rel, line, path, rest


def sources_for(path):
    """The text a command's flags must appear in: the file itself, and for the shell wrappers and thin front
    ends the Python behind them (scripts/, runs/, results/)."""
    text = read(path) if os.path.exists(os.path.join(REPO, path)) else ""
    if path.startswith("scripts/"):
        for folder in ("scripts", "runs", "results"):
            for name in sorted(os.listdir(os.path.join(REPO, folder))):
                if name.endswith(".py"):
                    text += read(os.path.join(folder, name))
    return text


def test_readme_is_a_front_door():
    assert len(read("README.md").splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("rel", DOC_FILES)
def test_links_resolve(rel):
    base = os.path.dirname(os.path.join(REPO, rel))
    missing = [link for link in LINK.findall(read(rel))
               if "://" not in link and not os.path.exists(os.path.normpath(os.path.join(base, link)))]
    assert not missing, f"{rel} links to files that do not exist: {missing}"


def test_every_shown_command_exists():
    missing = sorted({(rel, path) for rel, _, path, _ in project_command_lines()
                      if not os.path.exists(os.path.join(REPO, path.split(" (")[0]))})
    assert not missing, f"commands shown in the docs that do not exist: {missing}"


def test_every_shown_flag_is_defined():
    undefined = []
    for rel, line, path, rest in project_command_lines():
        text = sources_for(path)
        for tok in rest:
            flag = tok.split("=", 1)[0]
            if re.match(r"^--[a-z][a-z0-9-]*$", flag) and f'"{flag}"' not in text and f"'{flag}'" not in text \
                    and f"{flag})" not in text and f"{flag}|" not in text:
                undefined.append((rel, flag, line))
    assert not undefined, f"flags shown in the docs that their command does not define: {undefined}"


def test_every_shown_config_key_exists():
    from plugins import load_plugins, project_cfg

    load_plugins()
    cfg = project_cfg()

    def has(key):
        node = cfg
        for part in key.split("."):
            if part not in node:
                return False
            node = node[part]
        return True

    unknown = [(rel, tok, line) for rel, line, _, rest in project_command_lines() for tok in rest
               if CONFIG_KEY.match(tok) and not has(tok)]
    assert not unknown, f"config keys shown in the docs that the config tree does not have: {unknown}"
