"""Fashion-MNIST and MNIST as CoOp-style datasets (splits, few-shot caches), built from their IDX files.

The images and split are written on first use by :mod:`datasets.mnist_data` from the IDX files of the
Debian package (Fashion-MNIST), torchvision's download layout or a copy under the data root;
``python -m datasets.download fashion_mnist --root DATA`` does the same, or says what to install where.
``DATASET.MNIST_TEST_PER_CLASS`` > 0 evaluates on the first that many test images of each class (quick
runs on a CPU; recorded with the run's config, and said in the log), 0 on all 10,000.
"""
from engine import DATASET_REGISTRY
from engine.extend import register_config

from .base import CoOpDataset
from .mnist_data import (
    FASHION,
    IMAGE_DIR,
    MNIST,
    build,
    dirs_under,
    find_idx_files,
    missing_message,
    test_subset,
)
from .sources import Source


@register_config
def _mnist_keys(cfg):
    cfg.DATASET.MNIST_TEST_PER_CLASS = 0  # FashionMNIST / MNIST: > 0 keeps the first N test images per class


def _layout(family):
    dirs = dirs_under(family, "<ROOT>")
    return (f"{family.folder}/                 (built on first use from the IDX files)\n"
            f"  {IMAGE_DIR}/<label>_<class>/{{train,test}}-<index>.png\n  {family.split_file}\n"
            f"  {family.meta_file}\n  split_fewshot/shot_<K>-seed_<S>.pkl\n"
            f"IDX files looked for in: {', '.join(dirs)}\n")


class IdxDataset(CoOpDataset):
    """Shared loader of the MNIST family (``family`` says which)."""

    family = FASHION
    image_folder = IMAGE_DIR

    @classmethod
    def build_from_local(cls, root, quiet=False):
        """datasets.download: build the folder from local IDX files; False (and what to do) when none."""
        if find_idx_files(cls.family, root) is None:
            print("  " + missing_message(cls.family, root).replace("\n", "\n  "))
            return False
        build(cls.family, root, verbose=not quiet)
        return True

    def configure(self, cfg):
        build(self.family, self.root)
        self.test_per_class = int(cfg.DATASET.get("MNIST_TEST_PER_CLASS", 0))
        if self.test_per_class < 0:
            raise ValueError(f"DATASET.MNIST_TEST_PER_CLASS must be >= 0 (0: all test images), got "
                             f"{self.test_per_class}.")

    def finalize(self, train, val, test, cfg):
        if self.test_per_class > 0:
            full = len(test)
            test = test_subset(test, self.test_per_class)
            print(f"Note: {type(self).__name__} test subset: the first {self.test_per_class} test images of each "
                  f"class ({len(test):,} of {full:,}; DATASET.MNIST_TEST_PER_CLASS)")
        return super().finalize(train, val, test, cfg)


@DATASET_REGISTRY.register()
class FashionMNIST(IdxDataset):
    family = FASHION
    dataset_dir = FASHION.folder
    split_file = FASHION.split_file
    config_name = FASHION.folder
    display_name = "Fashion-MNIST"
    aliases = ("fmnist", "fashion-mnist")
    layout = _layout(FASHION)
    source = Source(FASHION.folder, FASHION.folder, (), manual=missing_message(FASHION, "{dataset_dir}/.."))


@DATASET_REGISTRY.register()
class MNIST(IdxDataset):
    family = MNIST
    dataset_dir = MNIST.folder
    split_file = MNIST.split_file
    config_name = MNIST.folder
    zeroshot_template = 'a photo of the number: "{}".'  # CLIP's MNIST template
    layout = _layout(MNIST)
    source = Source(MNIST.folder, MNIST.folder, (), manual=missing_message(MNIST, "{dataset_dir}/.."))
