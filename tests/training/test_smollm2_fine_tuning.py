"""Fine-tuning the bundled SmolLM2 (Llama architecture, loaded from GGUF) with LoRA on chat data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from shoplm.training import load_train_config, run_training
from tests.training.conftest import write_config

pytestmark = pytest.mark.real_models


def test_lora_chat_fine_tuning_of_smollm2_gives_a_servable_llama(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"Is '{title}' in stock?"},
                          {"role": "assistant", "content": "Yes, it ships within two days."}]}
            for title in ("red running shoes", "wireless earbuds", "cotton shirt", "air fryer")] * 2
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = {
        "task": "chat", "output_dir": str(tmp_path / "run"),
        "data": {"train": [str(data)], "validation": [str(data)]},
        "model": {"from_pretrained": "package:smollm2"},
        "preprocessing": {"padding": {"max_length": 128}},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "training": {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-4, "eval_strategy": "no",
                     "save_strategy": "no", "logging_steps": 1},
    }

    result = run_training(load_train_config(write_config(tmp_path / "chat.yaml", config)))

    model = AutoModelForCausalLM.from_pretrained(result.final_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.final_dir)
    assert model.config.model_type == "llama" and tokenizer.chat_template
    assert not any("lora" in name for name in model.state_dict())
    assert result.metrics["train_loss"] > 0
