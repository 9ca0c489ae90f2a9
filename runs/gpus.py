"""Which GPUs a `--mode gpus` sweep uses: the --gpus list or what nvidia-smi lists."""
import shutil
import subprocess

from .jobs import UsageError


def detect_gpus(text):
    if text:
        gpus = [g.strip() for g in text.split(",") if g.strip()]
        if not gpus:
            raise UsageError("--gpus is empty; give ids like 0,1")
        return gpus
    if shutil.which("nvidia-smi") is None:
        raise UsageError("--mode gpus: nvidia-smi not found and no --gpus given; pass --gpus 0,1 "
                         "or use --mode seq")
    try:
        listing = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise UsageError(f"--mode gpus: nvidia-smi failed ({exc}); pass --gpus 0,1") from None
    gpus = [line.strip() for line in listing.splitlines() if line.strip()]
    if not gpus:
        raise UsageError("--mode gpus: nvidia-smi lists no GPU; pass --gpus or use --mode seq")
    return gpus
