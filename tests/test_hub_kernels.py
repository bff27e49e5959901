"""Models loaded in a shoplm process keep PyTorch's own layers: no kernels fetched from the Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Saves a tiny RoBERTa classifier, loads it back the way shoplm's trainer, evaluator and server do
# (from_pretrained, after importing shoplm) and prints whether transformers kernelized it.
LOAD = """
import sys
import shoplm
from transformers import AutoModelForSequenceClassification, RobertaConfig, RobertaForSequenceClassification
config = RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=40)
RobertaForSequenceClassification(config).save_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
print(bool(getattr(model, "use_kernels", False)))
"""


def load_and_report(tmp_path: Path, **env: str) -> str:
    clean = {key: value for key, value in os.environ.items() if key != "USE_HUB_KERNELS"}
    done = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "model")], env={**clean, **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_shoplm_turns_hub_kernels_off(tmp_path: Path) -> None:
    assert load_and_report(tmp_path) == "False"


def test_users_can_turn_hub_kernels_on(tmp_path: Path) -> None:
    pytest.importorskip("kernels", reason="transformers without its kernels dependency never kernelizes")
    assert load_and_report(tmp_path, USE_HUB_KERNELS="YES") == "True"
