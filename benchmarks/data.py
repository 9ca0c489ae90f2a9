"""A generated image-folder dataset and description files for the benchmarks (no download).

Images are JPEGs of a realistic size (default 500 x 375, like Caltech101 / SUN397 photos), so decoding
costs what it costs on real data; each class has its own colour tint so that training is not pure noise.
The default split has 16 training and 48 test images per class: test / train = 3, as in SUN397 (3.1) and
ImageNet (3.1) at 16 shots (Caltech101 1.5, Food101 19, EuroSAT 51).
The folder is read by the toolkit's ``ImageFolder`` dataset (DATASET.NAME ImageFolder) and, through the
paths of the run's split, by the reference-style loop.
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

CAUSES = ("cse_1", "cse_2", "cse_3")


def class_names(n):
    return [f"class_{i:03d}" for i in range(n)]


def _write_image(path, rng_seed, tint, size):
    rng = np.random.RandomState(rng_seed)
    w, h = size
    coarse = rng.rand(6, 8, 3) * 255.0
    img = Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) * 0.5 + np.asarray(tint, dtype=np.float32) * 0.5
    arr += rng.randn(h, w, 3) * 12.0
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_image_folder(folder, num_classes=10, train=16, val=4, test=48, size=(500, 375), seed=0):
    """Write ``folder/<class>/<i>.jpg`` and its split_ImageFolder.json (train / val / test images per class;
    skipped when the folder already holds them); return the class names."""
    names = class_names(num_classes)
    per_class = train + val + test
    marker = os.path.join(folder, f".complete_{num_classes}x{train}-{val}-{test}_{size[0]}x{size[1]}")
    if os.path.exists(marker):
        return names
    rng = np.random.RandomState(seed)
    jobs, split = [], {"train": [], "val": [], "test": []}
    for c, name in enumerate(names):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        tint = rng.randint(0, 256, size=3)
        for i in range(per_class):
            rel = f"{name}/{i:04d}.jpg"
            jobs.append((os.path.join(folder, rel), seed * 1_000_003 + c * 10_007 + i, tint))
            part = "train" if i < train else ("val" if i < train + val else "test")
            split[part].append([rel, c, name])
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda j: _write_image(j[0], j[1], j[2], size), jobs))
    with open(os.path.join(folder, "split_ImageFolder.json"), "w") as f:
        json.dump(split, f)
    fewshot = os.path.join(folder, "split_fewshot")  # few-shot caches of an earlier layout
    if os.path.isdir(fewshot):
        for name in os.listdir(fewshot):
            os.remove(os.path.join(fewshot, name))
    open(marker, "w").close()
    return names


def make_descriptions(folder, key, names, n=20):
    """attributes/<key>_des.json, _dist.json and causes/<key>_cse_{1,2,3}.json with n sentences per class."""
    adjectives = ["bright", "dull", "round", "sharp", "soft", "rough", "smooth", "dark", "striped", "spotted"]
    nouns = ["edge", "surface", "outline", "pattern", "texture", "shape", "corner", "border", "centre", "tone"]
    files = {
        f"attributes/{key}_des.json": "A photo of {c}, which has a {a} {o} that is easy to see ({i}).",
        f"attributes/{key}_dist.json": "Unlike other classes, {c} shows a {a} {o} in the picture ({i}).",
    }
    for k, cause in enumerate(CAUSES):
        files[f"causes/{key}_{cause}.json"] = f"Cause {k + 1}: a {{c}} is recognised by its {{a}} {{o}} ({{i}})."
    for rel, pattern in files.items():
        data = {c: [pattern.format(c=c, a=adjectives[(i + j) % 10], o=nouns[(3 * i + j) % 10], i=i)
                    for i in range(n)] for j, c in enumerate(names)}
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f)
    return folder
