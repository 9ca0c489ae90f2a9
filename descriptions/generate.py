"""Create description files for a new dataset: ``python -m descriptions.generate``.

Asks an OpenAI-compatible chat endpoint (see descriptions/chat.py for the environment variables)
for sentences about each class, in the published format ({class name: [sentences]}):

* ``des``: descriptive attributes, what the class looks like (attributes/<key>_des.json);
* ``dist``: distinctive attributes, what sets it apart from the other classes
  (attributes/<key>_dist.json);
* ``causes``: one file per cause, e.g. shape / colour / texture (causes/<key>_cse_<i>.json).

One request per class (and per cause). After every class the file is rewritten atomically, so an
interrupted run keeps its work and the same command continues where it stopped.
Default sizes follow the published files: 25 sentences per class for attributes (so that sampling
m = 20 needs no repeats), 20 for causes.
"""
import argparse
import json
import os
import re
import sys

from .chat import ChatClient, ChatError
from .files import (
    CFG_DESCRIPTIONS_DIR,
    CFG_DESCRIPTIONS_KEY,
    DEFAULT_DIR,
    check_key,
    read_description_file,
    write_description_file,
)

KINDS = ("des", "dist", "causes")
DEFAULT_N = {"des": 25, "dist": 25, "causes": 20}
LIST_OTHERS_UP_TO = 20  # name the other classes in the 'dist' prompt when there are this few

SYSTEM_PROMPT = ("You describe how things look in photographs, for an image classifier that "
                 "compares pictures with sentences. Reply with a numbered list of sentences and "
                 "nothing else.")


class GenerateError(RuntimeError):
    """Generation stopped; the message names the class and file, and how to continue."""


# ---------------------------------------------------------------- class names

def _looks_like_path(spec):
    return os.sep in spec or "/" in spec or spec.lower().endswith((".txt", ".json", ".csv"))


_SPLIT_NAMES = {"train", "val", "valid", "validation", "test"}


def _subfolders(folder):
    return sorted(d for d in os.listdir(folder)
                  if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def read_classnames(spec):
    """Class names from a dataset folder (one sub-folder per class, sorted as ImageFolder does;
    a folder holding only train/val/test splits uses train/), a text file (one name per line; blank lines and '#' \
comments skipped), a JSON file (a list of
    names or an object whose keys are names) or a comma-separated list."""
    if os.path.isdir(spec):
        names = _subfolders(spec)
        if names and "train" in names and set(names) <= _SPLIT_NAMES:
            names = _subfolders(os.path.join(spec, "train"))  # root/{train,val,test}/<class>
        if not names:
            raise ValueError(f"--classnames {spec}: the folder has no class sub-folders "
                             "(expected the ImageFolder layout: one sub-folder per class)")
    elif os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            text = f.read()
        if spec.lower().endswith(".json"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"--classnames {spec}: malformed JSON ({e.msg} at line {e.lineno})") from None
            if isinstance(obj, dict):
                obj = list(obj)
            if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
                raise ValueError(f"--classnames {spec}: expected a JSON list of class names")
            names = [x.strip() for x in obj if x.strip()]
        else:
            names = [ln.strip() for ln in text.splitlines()]
            names = [n for n in names if n and not n.startswith("#")]
    elif "," in spec or not _looks_like_path(spec):
        names = [n.strip() for n in spec.split(",") if n.strip()]
    else:
        raise ValueError(f"--classnames {spec}: no such file or folder (give a dataset folder, a "
                         "file with one class name per line, or a comma-separated list)")
    if not names:
        raise ValueError(f"--classnames {spec}: no class names found")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- prompts

def _article(word):
    return "an" if word[:1].lower() in "aeiou" else "a"


def display_name(classname):
    """How a class is named in a prompt: underscores read as spaces."""
    return " ".join(classname.replace("_", " ").split())


def build_messages(kind, classname, n, domain="object", cause="", others=()):
    """The chat messages for one request (own wording, after the papers' three kinds of ask)."""
    label = display_name(classname)
    thing = f"{_article(domain)} {domain} called \"{label}\""
    rules = (f"Every sentence must mention \"{label}\", make sense on its own and have at most "
             f"30 words.")
    if kind == "des":
        ask = (f"Write {n} different sentences that describe the visual appearance of {thing}: "
               f"what a photo of it shows, such as its shape, parts, colours, textures, size and "
               f"usual surroundings.")
    elif kind == "dist":
        other = ""
        if others:
            other = " such as " + ", ".join(f"\"{display_name(o)}\"" for o in others)
        ask = (f"Write {n} different sentences that describe what makes {thing} look different "
               f"from other {domain} categories{other}. Focus on visible features that tell it "
               f"apart from them.")
    elif kind == "causes":
        if not cause:
            raise ValueError("a cause is needed for kind 'causes'")
        ask = (f"Write {n} different sentences that describe the {cause} of {thing} as it "
               f"appears in an image. Each sentence must be about its {cause}.")
    else:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{ask} {rules}"}]


# ---------------------------------------------------------------- answers

_MARKER = re.compile(r"^(?:\(?\d{1,3}[.):\]]|[-*\u2022\u2013\u00b7])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def parse_sentences(text):
    """Sentences from a numbered or bulleted list (any preface line is ignored); a plain answer is
    split into lines, or into sentences when it is one paragraph. Order kept, duplicates dropped."""
    lines = [ln.replace("**", "").strip() for ln in (text or "").splitlines()]
    lines = [ln for ln in lines if ln]
    marked = [ln for ln in lines if _MARKER.match(ln)]
    if marked:
        items = [_MARKER.sub("", ln, count=1) for ln in marked]
    elif len(lines) == 1:
        items = _SENTENCE_END.split(lines[0])
    else:
        items = lines
    out = []
    for it in items:
        it = " ".join(it.split()).strip().strip("\"'\u201c\u201d").strip()
        if it and it not in out:
            out.append(it)
    return out


# ---------------------------------------------------------------- files

def plan_files(key, kinds, causes):
    """[(relative path, kind, cause)] for the requested kinds, in generation order."""
    out = []
    for kind in kinds:
        if kind in ("des", "dist"):
            out.append((f"attributes/{key}_{kind}.json", kind, ""))
        else:
            for i, cause in enumerate(causes, 1):
                out.append((f"causes/{key}_cse_{i}.json", kind, cause))
    return out


def _load_partial(path):
    if not os.path.isfile(path):
        return {}
    try:
        return read_description_file(path)
    except ValueError as e:
        raise GenerateError(f"cannot continue the partial file: {e}") from None


def generate_file(client, path, classnames, kind, n, domain="object", cause="", min_chars=20,
                  attempts=3, log=print):
    """Fill ``path`` with ``n`` sentences for every class, skipping classes already done.

    Returns the number of classes requested in this call.
    """
    data = _load_partial(path)
    done = {c for c, s in data.items() if any(len(x) >= min_chars for x in s)}
    todo = [c for c in classnames if c not in done]
    if not todo:
        log(f"{path}: all {len(classnames)} classes present, nothing to do")
        return 0
    if done & set(classnames):
        log(f"{path}: {len(set(classnames) & done)} classes already done, continuing")
    extra = [c for c in data if c not in set(classnames)]
    for j, c in enumerate(todo, 1):
        others = ()
        if kind == "dist" and len(classnames) - 1 <= LIST_OTHERS_UP_TO:
            others = [o for o in classnames if o != c]
        messages = build_messages(kind, c, n, domain=domain, cause=cause, others=others)
        got, last = [], ""
        for _ in range(max(1, attempts)):
            try:
                last = client.complete(messages)
            except ChatError as e:
                raise GenerateError(_stopped(path, c, str(e), data, classnames)) from None
            for s in parse_sentences(last):
                if len(s) >= min_chars and s not in got:
                    got.append(s)
            if len(got) >= n:
                break
        if not got:
            why = (f"the endpoint gave no usable sentence (at least {min_chars} characters) in "
                   f"{max(1, attempts)} attempt(s); last answer: {last.strip()[:200]!r}")
            raise GenerateError(_stopped(path, c, why, data, classnames))
        if len(got) < n:
            log(f"  warning: only {len(got)} of {n} sentences for {c!r}")
        data[c] = got[:n]
        ordered = {k: data[k] for k in classnames if k in data}
        ordered.update({k: data[k] for k in extra})
        write_description_file(path, ordered)
        log(f"  [{j}/{len(todo)}] {c}: {len(data[c])} sentences")
    return len(todo)


def _stopped(path, classname, why, data, classnames):
    saved = sum(1 for c in classnames if c in data)
    return (f"stopped at class {classname!r} of {path}: {why}\n"
            f"{saved} of {len(classnames)} classes are saved in {path}; run the same command "
            f"again to continue from there.")


def generate(classnames, key, dest, kinds=("des", "dist"), causes=(), n=None, domain="object",
             client=None, min_chars=20, attempts=3, log=print):
    """Generate the requested files under ``dest``; returns their paths."""
    key = check_key(key)
    kinds = list(dict.fromkeys(kinds))
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r}: use one of {', '.join(KINDS)}")
    causes = [c.strip() for c in causes if c.strip()]
    if "causes" in kinds and not causes:
        raise ValueError("kind 'causes' needs the causes, e.g. --causes \"shape,colour,texture\"")
    if n is not None and n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if client is None:
        client = ChatClient.from_env()
    dest = os.path.abspath(os.path.expanduser(dest))
    plan = plan_files(key, kinds, causes)
    paths = []
    for rel, kind, cause in plan:
        path = os.path.join(dest, rel)
        what = f"cause '{cause}'" if cause else ("descriptive" if kind == "des" else "distinctive") + " attributes"
        log(f"{rel}: {what}, {len(classnames)} classes")
        generate_file(client, path, classnames, kind, n or DEFAULT_N[kind], domain=domain,
                      cause=cause, min_chars=min_chars, attempts=attempts, log=log)
        paths.append(path)
    return paths


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m descriptions.generate",
        description="Create description files for a dataset with an OpenAI-compatible chat "
                    "endpoint (OPENAI_BASE_URL, OPENAI_API_KEY, VR_DESCRIPTIONS_MODEL).")
    p.add_argument("--classnames", required=True,
                   help="dataset folder (one sub-folder per class), file with one name per line, "
                        "JSON list, or comma-separated names")
    p.add_argument("--key", required=True, help="file-name key, e.g. my_flowers")
    p.add_argument("--dest", default=DEFAULT_DIR,
                   help="folder that receives attributes/ and causes/ (default: %(default)s)")
    p.add_argument("--kind", nargs="+", choices=KINDS,
                   help="files to make (default: des dist, plus causes when --causes is given)")
    p.add_argument("--causes", default="", help="comma-separated causes, e.g. \"shape,colour,texture\"")
    p.add_argument("--n", type=int, default=None,
                   help="sentences per class (default: 25 for des/dist, 20 for causes)")
    p.add_argument("--domain", default="object",
                   help="what the images show, used in the prompts: object, flower, texture, "
                        "remote sensing scene, ... (default: %(default)s)")
    p.add_argument("--model", default="", help="model name (default: $VR_DESCRIPTIONS_MODEL or gpt-4o-mini)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--attempts", type=int, default=3,
                   help="requests per class at most, when answers are empty or too short")
    p.add_argument("--retries", type=int, default=3, help="retries of a failed HTTP request")
    p.add_argument("--retry-delay", type=float, default=2.0, help="seconds, grows with each retry")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        classnames = read_classnames(args.classnames)
        causes = [c for c in args.causes.split(",") if c.strip()] if args.causes else []
        kinds = args.kind or (["des", "dist"] + (["causes"] if causes else []))
        client = ChatClient.from_env(model=args.model, temperature=args.temperature,
                                     timeout=args.timeout, retries=args.retries,
                                     retry_delay=args.retry_delay)
        print(f"generating {', '.join(kinds)} for {len(classnames)} classes with model "
              f"{client.model!r} at {client.display_url}")
        paths = generate(classnames, args.key, args.dest, kinds=kinds, causes=causes, n=args.n,
                         domain=args.domain, client=client, attempts=args.attempts)
    except (ValueError, ChatError, GenerateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("done:")
    for p in paths:
        print(f"  {p}")
    dest = os.path.abspath(os.path.expanduser(args.dest))
    if dest != DEFAULT_DIR:
        print(f"use them with {CFG_DESCRIPTIONS_DIR} {dest} {CFG_DESCRIPTIONS_KEY} {args.key}")
    else:
        print(f"use them with {CFG_DESCRIPTIONS_KEY} {args.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
