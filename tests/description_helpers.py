"""Helpers of the description tests: the published files (when present) and small files written in a test."""
import json
from pathlib import Path

import pytest

from tests.conftest import DESCRIPTIONS as PUBLISHED_DESCRIPTIONS

SHARED = Path(PUBLISHED_DESCRIPTIONS)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="published description files not available")


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return str(path)


def sentences(tag, n):
    return [f"{tag}: a sentence long enough to keep, number {i}." for i in range(n)]
