"""Training: a thin layer over transformers.Trainer for causal LM, masked LM, chat and classification.

    config = load_train_config(Path("configs/train/sentiment.yaml"))
    result = run_training(config)           # result.final_dir holds the model the server loads

Several processes: ``shoplm train CONFIG --nproc N`` (or ``torchrun ... -m shoplm train CONFIG``).
"""

from shoplm.training.config import TrainConfig, load_train_config
from shoplm.training.trainer import TrainResult, run_training

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "run_training"]
