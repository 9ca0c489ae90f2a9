"""Small run files written atomically (a killed run leaves the old file or none): csv tables and tensors."""
import csv
import io

import torch

from engine.io import atomic_write_bytes, atomic_write_text


def write_csv(path, header, rows):
    """Write a small csv atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def save_tensors(path, obj):
    """torch.save to a temp file, then rename."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())
