"""Three-phase training: `train(config, manifest, out_dir, phases, resume)` and its config (`load_config`)."""

from brain3d.train.config import TrainConfig, load_config
from brain3d.train.run import train

__all__ = ["TrainConfig", "load_config", "train"]
