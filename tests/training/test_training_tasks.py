"""Every training task end to end on tiny models: the run directory, the final model, chaining runs."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from shoplm.config import ConfigError
from shoplm.evaluation import load_log_history
from shoplm.evaluation.evaluate import read_jsonl
from shoplm.textproc import PreprocessConfig, TextPipeline
from shoplm.training import load_train_config, run_training
from shoplm.training.config import TrainConfig
from shoplm.training.data import UNKNOWN_TOKEN_WARNING_SHARE
from tests.training.conftest import fine_tune_config, logged_losses, tiny_config, write_config


def train(tmp_path: Path, config: dict) -> Path:
    result = run_training(load_train_config(write_config(tmp_path / "run.yaml", config)))
    return result.run_dir


def test_classifier_from_scratch_writes_a_complete_run_directory(tmp_path: Path, reviews_dir: Path) -> None:
    run = train(tmp_path, tiny_config(tmp_path / "run", reviews_dir))

    info = json.loads((run / "run_info.json").read_text())
    assert info["seed"] == 7 and len(info["data_hash"]) == 64 and info["task"] == "classify"
    assert "commit" in info["git"] and info["train_metrics"]["train_samples_per_second"] > 0
    resolved = TrainConfig.model_validate(yaml.safe_load((run / "resolved_config.yaml").read_text()))
    assert resolved.training.batch_size == 8 and resolved.preprocessing.padding.max_length == 64
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in sorted(run.glob("checkpoint-*"))] == ["checkpoint-3", "checkpoint-6"]
    state = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())
    assert any("eval_roc_auc" in entry for entry in state["log_history"])

    final = run / "final"
    model = AutoModelForSequenceClassification.from_pretrained(final)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    pipeline = TextPipeline(PreprocessConfig.load(final), AutoTokenizer.from_pretrained(final))
    batch = pipeline.encode(["质量很好，物流很快", "太差了"])
    assert model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.shape == (2, 2)
    # The trained WordPiece vocabulary keeps Chinese characters, unlike MiniLM's English one.
    assert pipeline.tokenizer is not None and pipeline.tokenizer.unk_token_id not in batch.input_ids[0].tolist()


def test_class_names_come_from_the_dataset_card_and_may_stand_in_for_ids(tmp_path: Path, reviews_dir: Path) -> None:
    from shoplm.data import PrepareSettings, prepare_files
    from shoplm.evaluation.evaluate import EvaluationError, evaluate

    # A user's spreadsheet with three named classes; every third review is called neutral.
    names = ["neg", "neutral", "pos"]
    rows = [row for split in ("train", "validation", "test") for row in read_jsonl(reviews_dir / f"{split}.jsonl",
                                                                                   ["text", "label"])]
    named = [{"text": row["text"], "sentiment": "neutral" if i % 3 == 0 else names[2 * row["label"]]}
             for i, row in enumerate(rows)]
    source = tmp_path / "mine.jsonl"
    source.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in named), encoding="utf-8")
    card = prepare_files([source], tmp_path / "mine", PrepareSettings(label_column="sentiment"))
    assert card.label_names == names

    run = train(tmp_path, tiny_config(tmp_path / "run", tmp_path / "mine"))  # label_names not given

    model = AutoModelForSequenceClassification.from_pretrained(run / "final")
    assert model.config.id2label == dict(enumerate(names))
    resolved = yaml.safe_load((run / "resolved_config.yaml").read_text())
    assert resolved["model"]["label_names"] == names
    # Hand-made evaluation rows may name the class, or give its id as a string.
    by_name = tmp_path / "by_name.jsonl"
    by_name.write_text('{"text": "太差了", "label": "neg"}\n{"text": "很好", "label": "2"}\n'
                       '{"text": "还行", "label": 1}\n', encoding="utf-8")
    assert evaluate(run / "final", by_name).labels == [0, 2, 1]
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"text": "很好", "label": "positive"}\n', encoding="utf-8")
    with pytest.raises(EvaluationError, match=re.escape("'positive' is neither a class id 0..2 nor one of the "
                                                        "model's class names (neg, neutral, pos)")):
        evaluate(run / "final", unknown)


def test_training_rows_may_name_their_class(tmp_path: Path, reviews_dir: Path) -> None:
    named = tmp_path / "named.jsonl"
    rows = read_jsonl(reviews_dir / "train.jsonl", ["text", "label"])
    named.write_text("".join(json.dumps({"text": row["text"], "label": ["bad", "good"][row["label"]]},
                                        ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    config = tiny_config(tmp_path / "run", reviews_dir, model={"label_names": ["bad", "good"]})
    config["data"] = {"train": [str(named)], "validation": [str(reviews_dir / "validation.jsonl")]}

    run = train(tmp_path, config)

    model = AutoModelForSequenceClassification.from_pretrained(run / "final")
    assert model.config.id2label == {0: "bad", 1: "good"}
    assert logged_losses(run)  # the named rows trained


def test_masked_lm_pretraining_then_classifier_fine_tuning(tmp_path: Path, reviews_dir: Path) -> None:
    mlm = train(tmp_path, tiny_config(tmp_path / "mlm", reviews_dir, task="mlm"))
    cls = train(tmp_path, fine_tune_config(tmp_path / "cls", reviews_dir, mlm))

    pretrained = AutoModelForMaskedLM.from_pretrained(mlm / "final").roberta.embeddings.word_embeddings.weight
    tuned = AutoModelForSequenceClassification.from_pretrained(cls / "final").roberta.embeddings.word_embeddings.weight
    # A few fine-tuning steps move the pretrained embeddings a little; a fresh start would differ entirely.
    assert torch.allclose(tuned, pretrained, atol=0.05)
    mlm_vocab = AutoTokenizer.from_pretrained(mlm / "final").get_vocab()
    assert AutoTokenizer.from_pretrained(cls / "final").get_vocab() == mlm_vocab
    assert PreprocessConfig.load(cls / "final") == PreprocessConfig.load(mlm / "final")


@pytest.mark.parametrize("architecture", ["roberta-prelayernorm", "modernbert"])
def test_masked_lm_then_a_classifier_with_an_ngram_bag(tmp_path: Path, reviews_dir: Path, architecture: str) -> None:
    from shoplm.config import ModelConfig
    from shoplm.modeling import NgramBagForSequenceClassification
    from shoplm.serving.loading import load_model, resolve_source

    mlm = train(tmp_path, tiny_config(tmp_path / "mlm", reviews_dir, task="mlm", model={"architecture": architecture}))
    fine_tune = fine_tune_config(tmp_path / "cls", reviews_dir, mlm, model={
        "ngram_bag": {"orders": [1, 2], "buckets": 4096, "lr_scale": 10.0, "presence": True}})
    # Longer than the backbone's 64 positions: the bag reads it all, the backbone head and tail.
    fine_tune["preprocessing"] = {"truncate": {"unit": "tokens", "strategy": "head_tail"},
                                  "padding": {"max_length": 160}}

    cls = train(tmp_path, fine_tune)

    model = AutoModelForSequenceClassification.from_pretrained(cls / "final").eval()
    assert isinstance(model, NgramBagForSequenceClassification)
    assert model.backbone.config.model_type == architecture and model.config.ngram_orders == [1, 2]
    assert model.config.ngram_presence  # the repeated phrase of the long review below counts once
    assert model.ngram_weights.weight.abs().sum() > 0  # the bag learned
    pretrained = AutoModelForMaskedLM.from_pretrained(mlm / "final").get_input_embeddings().weight
    tuned = model.get_input_embeddings().weight
    # A few fine-tuning steps move the pretrained embeddings a little; a fresh start would differ entirely.
    assert torch.allclose(tuned, pretrained, atol=0.05) and not torch.equal(tuned, pretrained)
    # The server loads it as a classifier like any other and gets the same logits.
    config = ModelConfig(name="s", task="classify", source=str(cls / "final"))
    served = load_model(config, resolve_source(config, tmp_path))
    assert served.preprocessing.padding.max_length == 160
    long_review = "物流很快，包装完好，" * 12 + "就是颜色和图片不一样，有点失望。"
    batch = TextPipeline(served.preprocessing, served.tokenizer).encode(["质量很好，物流很快", long_review, "太差了"])
    assert batch.input_ids.shape[1] > 64
    with torch.no_grad():
        direct = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        assert torch.allclose(served.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits,
                              direct)


def test_replaced_token_detection_pretraining_then_classifier_fine_tuning(tmp_path: Path, reviews_dir: Path) -> None:
    from shoplm.training.publish import PublishError, publish

    rtd = train(tmp_path, tiny_config(tmp_path / "rtd", reviews_dir, task="rtd",
                                      model={"architecture": "roberta-prelayernorm"}, rtd={"generator_layers": 1}))
    # The run keeps the discriminator alone, as a plain token classifier (one logit: replaced or not).
    discriminator = AutoModelForTokenClassification.from_pretrained(rtd / "final")
    assert discriminator.config.num_labels == 1 and discriminator.config.num_hidden_layers == 2
    losses = logged_losses(rtd / "checkpoint-6")
    assert len(losses) == 6 and all(loss > 0 for loss in losses)
    with pytest.raises(PublishError, match="fine-tune it"):
        publish(rtd, "encoder", tmp_path / "models")

    cls = train(tmp_path, fine_tune_config(tmp_path / "cls", reviews_dir, rtd))

    pretrained = discriminator.roberta_prelayernorm.embeddings.word_embeddings.weight
    tuned = AutoModelForSequenceClassification.from_pretrained(cls / "final").roberta_prelayernorm
    assert torch.allclose(tuned.embeddings.word_embeddings.weight, pretrained, atol=0.05)
    assert AutoTokenizer.from_pretrained(cls / "final").get_vocab() == AutoTokenizer.from_pretrained(
        rtd / "final").get_vocab()


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_causal_lm_pretraining_with_packing(tmp_path: Path, reviews_dir: Path, architecture: str) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, task="clm", model={"architecture": architecture},
                         data={"dir": str(reviews_dir), "pack": True})

    run = train(tmp_path, config)

    model = AutoModelForCausalLM.from_pretrained(run / "final")
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    assert model.config.model_type == architecture
    assert tokenizer.eos_token == "</s>" and tokenizer.chat_template
    output = model.generate(**tokenizer("质量", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert output.shape[1] > 1


def test_chat_fine_tuning_learns_only_the_answer(tmp_path: Path, reviews_dir: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"评价: {text}"}, {"role": "assistant", "content": answer}]}
        for text, answer in [("很好用", "好评"), ("太差了", "差评")] * 20
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    config = tiny_config(tmp_path / "run", reviews_dir, task="chat", model={"architecture": "llama"},
                         data={"train": [str(data)], "validation": [str(data)]})
    config["data"].pop("dir")
    config["tokenizer"]["max_texts"] = 1000

    run = train(tmp_path, config)

    from shoplm.training.data import chat_token_ids

    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    pipeline = TextPipeline(PreprocessConfig.load(run / "final"), tokenizer)
    ids, prompt_length = chat_token_ids(tokenizer, pipeline, rows[0]["messages"])
    answer = tokenizer.decode(ids[prompt_length:])
    assert answer.startswith("好评") and answer.endswith(tokenizer.eos_token)


def test_chat_rows_that_cannot_train_are_counted_or_named(
    tmp_path: Path, reviews_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from shoplm.training.data import TrainingDataError

    rows = [
        {"messages": [{"role": "user", "content": f"评价: {text}"}, {"role": "assistant", "content": answer}]}
        for text, answer in [("很好用", "好评"), ("太差了", "差评")] * 20
    ]
    # A prompt of 200 distinct characters fills the 64 positions before the answer begins.
    rows[4]["messages"][0]["content"] = "".join(chr(0x4E00 + 37 * i) for i in range(200))
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    config = tiny_config(tmp_path / "run", reviews_dir, task="chat", training={"max_steps": 2})
    config["data"] = {"train": [str(data)], "validation": [str(data)]}

    with caplog.at_level("WARNING", logger="shoplm.training.data"):
        train(tmp_path, config)

    assert "train: 1 of 40 rows of chat.jsonl skipped: the prompt before the answer fills all 64 tokens" in caplog.text

    rows[2]["messages"] = rows[2]["messages"][:1]  # the question without its answer
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(TrainingDataError, match=re.escape(
            "chat.jsonl, row 3: the last chat message must be the assistant's answer, got 'user'")):
        train(tmp_path, {**config, "output_dir": str(tmp_path / "run2")})

    rows[2]["messages"] = "hello"  # not a list of messages; the tokenizer is trained before the rows are checked
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(TrainingDataError, match=re.escape(
            "chat.jsonl, row 3: chat rows need a non-empty list of {role, content} messages")):
        train(tmp_path, {**config, "output_dir": str(tmp_path / "run3")})


def test_classify_rows_without_text_are_skipped_and_counted(
    tmp_path: Path, reviews_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = (reviews_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    lines[3] = json.dumps({"text": None, "label": 1})
    lines[7] = json.dumps({"text": "  ", "label": 0})
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tiny_config(tmp_path / "run", reviews_dir, training={"max_steps": 2})
    config["data"] = {"train": [str(data)], "validation": [str(reviews_dir / "validation.jsonl")]}

    with caplog.at_level("WARNING", logger="shoplm.training.data"):
        run = train(tmp_path, config)

    assert "train: 2 of 20 rows of train.jsonl skipped: no text" in caplog.text
    assert (run / "final" / "config.json").is_file()


def test_lora_adapters_merge_into_a_plain_model(tmp_path: Path, reviews_dir: Path) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, task="clm", lora={"r": 4, "alpha": 8,
                                                                         "target_modules": ["c_attn"]})

    run = train(tmp_path, config)

    model = AutoModelForCausalLM.from_pretrained(run / "final")
    assert not any("lora" in name for name in model.state_dict())


def test_gradient_accumulation_and_checkpointing_options_reach_the_trainer(tmp_path: Path, reviews_dir: Path) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, training={
        "gradient_accumulation_steps": 2, "gradient_checkpointing": True, "max_steps": 2, "eval_strategy": "no",
        "save_strategy": "no",
    })

    run = train(tmp_path, config)

    info = json.loads((run / "run_info.json").read_text())
    assert info["train_metrics"]["train_samples_per_second"] > 0
    assert not list(run.glob("checkpoint-*"))


def test_label_smoothing_softens_the_classifier_loss(tmp_path: Path, reviews_dir: Path) -> None:
    smoothing = 0.3
    # The n-gram bag learns fast enough for the model to leave the uniform guess within a few steps.
    config = tiny_config(tmp_path / "run", reviews_dir, model={"ngram_bag": {"buckets": 4096}}, training={
        "label_smoothing": smoothing, "max_steps": 12, "eval_steps": 12, "save_steps": 12,
    })

    run = train(tmp_path, config)

    eval_loss = [entry["eval_loss"] for entry in load_log_history(run) if "eval_loss" in entry][-1]
    rows = read_jsonl(reviews_dir / "validation.jsonl", ["text", "label"])
    model = AutoModelForSequenceClassification.from_pretrained(run / "final").eval()
    pipeline = TextPipeline(PreprocessConfig.load(run / "final"), AutoTokenizer.from_pretrained(run / "final"))
    batch = pipeline.encode([row["text"] for row in rows])
    labels = torch.tensor([row["label"] for row in rows])
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    smoothed = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing).item()
    plain = torch.nn.functional.cross_entropy(logits, labels).item()
    assert abs(smoothed - plain) > 0.01  # the trained model is far enough from uniform to tell them apart
    assert eval_loss == pytest.approx(smoothed, abs=2e-3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training": {"batch_size": 0}}, "training.batch_size"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"task": "mlm", "model": {"architecture": "gpt2"}}, "cannot do task 'mlm'"),
        ({"typo_field": 1}, "typo_field"),
        ({"training": {"batchsize": 8}}, "training.batchsize: Extra inputs are not permitted (did you mean 'batch_"),
        ({"tokenizer": {"vocab": 8}}, "tokenizer.vocab: Extra inputs are not permitted (did you mean 'vocab_size'?)"),
        ({"data": {"dir": "x", "corpus": "reviews"}}, "exactly one of data.dir"),
        ({"task": "mlm", "model": {"ngram_bag": {}}}, "model.ngram_bag is for task 'classify'"),
        ({"model": {"ngram_bag": {"orders": [2, 2]}}}, "model.ngram_bag"),
        ({"task": "mlm", "rtd": {"generator_layers": 1}}, "the rtd section is for task 'rtd'"),
        ({"task": "rtd", "rtd": {"generator_layers": 0}}, "rtd.generator_layers"),
        ({"task": "rtd", "model": {"architecture": None, "from_pretrained": "x"}}, "task 'rtd' pretrains from scratch"),
        ({"task": "mlm", "training": {"label_smoothing": 0.1}}, "training.label_smoothing is for task 'classify'"),
        ({"training": {"label_smoothing": 1.0}}, "training.label_smoothing"),
        ({"training": {"metric_for_best_model": "nonsense"}},
         "training.metric_for_best_model 'nonsense' is not reported by task 'classify'; use one of loss, accuracy"),
        ({"task": "mlm", "training": {"metric_for_best_model": "eval_accuracy"}},
         "'eval_accuracy' is not reported by task 'mlm'; use one of loss"),
        ({"task": "mlm", "data": {"pack": True}}, "data.pack is for task 'clm'"),
        ({"model": {"architecture": None, "from_pretrained": "x"}}, "model.from_pretrained brings its own tokenizer"),
        ({"preprocessing": {"padding": {"max_length": 65}}},
         "preprocessing.padding.max_length (65) exceeds model.max_positions (64)"),
        ({"preprocessing": {"padding": {"strategy": "fixed", "length": 100}}}, "length=100 exceeds max_length=64"),
    ],
)
def test_bad_config_fields_are_named(tmp_path: Path, reviews_dir: Path, change: dict, message: str) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, **change)

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_train_config(write_config(tmp_path / "bad.yaml", config))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00binary", "is not UTF-8 text"),
        (b"task: [\n", "is not valid YAML"),
        (b"- a\n- list\n", "must hold a mapping of fields at the top level, got list"),
        (b"", "task: Field required"),
        (None, "is not a file"),
    ],
)
def test_an_unreadable_config_file_is_named(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "config.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_train_config(path)


def test_a_model_built_here_pads_to_its_positions_by_default(tmp_path: Path, reviews_dir: Path) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, preprocessing={"padding": {"strategy": "longest"}})

    loaded = load_train_config(write_config(tmp_path / "c.yaml", config))

    assert loaded.preprocessing.padding.max_length == 64  # model.max_positions, not the default 512
    assert loaded.preprocessing.padding.strategy == "longest"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dir": "MISSING"}, "no train split"),
        ({"train": ["NOCOLUMN"], "validation": ["NOCOLUMN"]}, "no column 'text'; its columns are review"),
        ({"train": ["BADLABEL"], "validation": ["BADLABEL"]}, "badlabel.jsonl, row 1: label 7 in column"),
        ({"train": ["CORRUPT"], "validation": ["CORRUPT"]}, "not valid JSON lines"),
        ({"train": ["EMPTY"], "validation": ["CORRUPT"]}, "empty.jsonl: the file holds no rows"),
        ({"train": ["BLANK"], "validation": ["CORRUPT"]}, "blank.txt: the file holds no rows"),
        ({"train": ["NUMBERS"], "validation": ["CORRUPT"]}, "numbers.jsonl: column 'text' holds int64, not text"),
        ({"train": ["MIXED"], "validation": ["CORRUPT"]}, "mixed.jsonl: column 'text' holds values of mixed types"),
        ({"train": ["BINARY"], "validation": ["CORRUPT"]}, "binary.txt: not UTF-8 text"),
        ({"train": ["GOOD"]}, "training.eval_strategy is 'steps', which needs validation rows: give data.validation"),
        ({"dir": "TRAIN_ONLY"}, "needs validation rows, and {TRAIN_ONLY}/validation.jsonl is missing"),
    ],
)
def test_bad_training_data_exits_2_naming_the_problem(
    tmp_path: Path, reviews_dir: Path, data: dict, message: str
) -> None:
    files = {
        "MISSING": tmp_path / "nowhere",
        "NOCOLUMN": tmp_path / "nocolumn.jsonl",
        "BADLABEL": tmp_path / "badlabel.jsonl",
        "CORRUPT": tmp_path / "corrupt.jsonl",
        "EMPTY": tmp_path / "empty.jsonl",
        "BLANK": tmp_path / "blank.txt",
        "NUMBERS": tmp_path / "numbers.jsonl",
        "MIXED": tmp_path / "mixed.jsonl",
        "BINARY": tmp_path / "binary.txt",
        "GOOD": reviews_dir / "train.jsonl",
        "TRAIN_ONLY": tmp_path / "train-only",
    }
    files["TRAIN_ONLY"].mkdir()
    shutil.copy(reviews_dir / "train.jsonl", files["TRAIN_ONLY"] / "train.jsonl")
    files["NUMBERS"].write_text('{"text": 5, "label": 1}\n' * 4, encoding="utf-8")
    files["MIXED"].write_text('{"text": "好", "label": 1}\n{"text": ["好"], "label": 0}\n', encoding="utf-8")
    files["BINARY"].write_bytes(b"\xff\xfe\x00\x81\n" * 4)
    files["NOCOLUMN"].write_text('{"review": "好", "label": 1}\n' * 4, encoding="utf-8")
    files["BADLABEL"].write_text('{"text": "好", "label": 7}\n' * 4, encoding="utf-8")
    files["CORRUPT"].write_text('{"text": "好", "label": 1}\n{"text": \n', encoding="utf-8")
    files["EMPTY"].write_text("", encoding="utf-8")
    files["BLANK"].write_text("\n  \n", encoding="utf-8")
    resolved = {key: ([str(files[v]) for v in value] if isinstance(value, list) else str(files[value]))
                for key, value in data.items()}
    config = tiny_config(tmp_path / "run", reviews_dir)
    config["data"] = resolved

    done = subprocess.run([sys.executable, "-m", "shoplm", "train", str(write_config(tmp_path / "c.yaml", config))],
                          capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 2, done.stderr[-2000:]
    assert message.format(**files) in done.stderr and "Traceback" not in done.stderr


def test_a_prepared_directory_without_validation_rows_trains_when_nothing_is_evaluated(
    tmp_path: Path, reviews_dir: Path
) -> None:
    # `shoplm data prepare --split 1,0,0` writes empty validation and test splits.
    prepared = tmp_path / "all-train"
    prepared.mkdir()
    shutil.copy(reviews_dir / "train.jsonl", prepared / "train.jsonl")
    (prepared / "validation.jsonl").write_text("", encoding="utf-8")
    config = tiny_config(tmp_path / "run", prepared, training={"eval_strategy": "no", "save_strategy": "no"})

    run = train(tmp_path, config)

    assert (run / "final" / "model.safetensors").is_file()


def test_a_length_that_leaves_no_room_for_text_is_a_config_error(tmp_path: Path, reviews_dir: Path) -> None:
    # Only the trained tokenizer knows it adds [CLS] and [SEP], so this is found after training it.
    config = tiny_config(tmp_path / "run", reviews_dir, preprocessing={"padding": {"max_length": 2}})

    with pytest.raises(ConfigError, match=re.escape(
            "preprocessing.padding: token limit 2 leaves no room for text: the tokenizer adds 2 special tokens")):
        train(tmp_path, config)


def test_roc_auc_as_the_watched_metric_needs_both_classes_in_validation(tmp_path: Path, reviews_dir: Path) -> None:
    rows = [json.loads(line) for line in (reviews_dir / "validation.jsonl").read_text(encoding="utf-8").splitlines()]
    positives = tmp_path / "positives.jsonl"
    positives.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows if row["label"] == 1),
                         encoding="utf-8")
    config = tiny_config(tmp_path / "run", reviews_dir, training={"metric_for_best_model": "roc_auc"})
    config["data"] = {"train": [str(reviews_dir / "train.jsonl")], "validation": [str(positives)]}

    with pytest.raises(ConfigError, match="the validation data holds one class, so it has no ROC-AUC"):
        train(tmp_path, config)


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path: Path, reviews_dir: Path) -> None:
    # A learning rate this small cannot change a prediction, so accuracy never improves.
    config = tiny_config(tmp_path / "run", reviews_dir, training={
        "max_steps": 40, "learning_rate": 1e-12, "eval_steps": 1, "save_steps": 1, "early_stopping_patience": 2,
        "metric_for_best_model": "accuracy",
    })

    run = train(tmp_path, config)

    steps = [int(p.name.split("-")[1]) for p in run.glob("checkpoint-*")]
    assert max(steps) == 3  # the first evaluation sets the best, two more without improvement stop it
    assert (run / "final" / "model.safetensors").is_file()


def test_perplexity_of_a_causal_lm_run(tmp_path: Path, reviews_dir: Path) -> None:
    from shoplm.evaluation.evaluate import evaluate

    run = train(tmp_path, tiny_config(tmp_path / "run", reviews_dir, task="clm", training={"max_steps": 4}))

    outcome = evaluate(run / "final", reviews_dir / "test.jsonl")

    assert outcome.kind == "language_model"
    assert 1.0 < outcome.metrics["perplexity"] < 400 * 1.5  # near the vocabulary size after 4 steps
    assert outcome.metrics["tokens"] > 1000
    assert outcome.metrics["n"] == 60  # every test review measured
    assert outcome.metrics["skipped_blank"] == 0

    odd = tmp_path / "odd.jsonl"
    odd.write_text("".join(json.dumps({"text": text}) + "\n" for text in ("很好", "  ", "好" * 500)), encoding="utf-8")
    counted = evaluate(run / "final", odd).metrics

    # The report says what was measured: the blank row left out, the long one cut to 64 tokens.
    assert (counted["n"], counted["skipped_blank"], counted["truncated"]) == (2, 1, 1)


@pytest.mark.parametrize("name", ["sentiment-mlm.yaml", "sentiment-rtd.yaml", "sentiment.yaml", "suggest.yaml"])
def test_shipped_training_configs_are_valid(name: str) -> None:
    config = load_train_config(Path(__file__).resolve().parents[2] / "configs" / "train" / name)

    assert config.output_dir.is_absolute() and config.training.epochs > 0


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_causal_architectures_train_as_classifiers(tmp_path: Path, reviews_dir: Path, architecture: str) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, model={"architecture": architecture},
                         tokenizer={"kind": "bpe"}, training={"eval_strategy": "no", "save_strategy": "no"})

    run = train(tmp_path, config)

    model = AutoModelForSequenceClassification.from_pretrained(run / "final")
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    pipeline = TextPipeline(PreprocessConfig.load(run / "final"), tokenizer)
    batch = pipeline.encode(["质量很好", "太差了，完全不能用"])
    # The head reads each row's last real token, found through the pad id.
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.shape == (2, 2)


def test_a_tokenizer_that_reads_the_text_as_unknown_tokens_is_warned_about(
    tmp_path: Path, reviews_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # MiniLM's English vocabulary reads most Chinese characters as [UNK].
    config = tiny_config(tmp_path / "run", reviews_dir, model={"from_pretrained": "package:all-minilm-l6-v2"},
                         data={"max_train_samples": 16, "max_eval_samples": 8},
                         training={"max_steps": 1, "eval_strategy": "no", "save_strategy": "no"})
    del config["tokenizer"], config["preprocessing"]
    for key in ("architecture", "hidden_size", "num_layers", "num_heads", "max_positions", "dropout"):
        del config["model"][key]

    with caplog.at_level(logging.WARNING, logger="shoplm.training.data"):
        train(tmp_path, config)

    warnings = [record.getMessage() for record in caplog.records if "tokenizer does not cover" in record.getMessage()]
    assert warnings and warnings[0].startswith("train: ")
    share = int(warnings[0].split("% of")[0].removeprefix("train: "))
    assert share > 100 * UNKNOWN_TOKEN_WARNING_SHARE and "[UNK]" in warnings[0]
