"""Checkpoint loading shared by the project's trainers, safe on both backends.

Real Dassl 0.6.3's ``load_model`` formats ``val_result`` as a number, but every last-epoch checkpoint
stores ``None`` there, so ``--eval-only --load-epoch N`` fails on Dassl. Trainers mix this in first.
"""
import os

from engine import load_checkpoint
from engine.checkpoint_files import model_file


class SafeLoadModel:
    def load_model(self, directory, epoch=None):
        """Load ``<directory>/<model name>/model.pth.tar-<epoch>`` (or model-best) into each model."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        for name in self.get_model_names():
            path = os.path.join(directory, name, model_file(epoch))
            if not os.path.exists(path):
                raise FileNotFoundError(f"No model at {path}. Pass the OUTPUT_DIR of a training run of "
                                        f"{self.cfg.TRAINER.NAME} and one of its saved epochs (--load-epoch).")
            checkpoint = load_checkpoint(path)
            print(f"Load {path} to {name} (epoch={checkpoint['epoch']})")
            self._models[name].load_state_dict(checkpoint["state_dict"])
