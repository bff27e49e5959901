"""Exact resume from a checkpoint, 2-process DDP (torchrun, gloo) against 1 process, FSDP units."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.http as triton_http
from safetensors.torch import load_file
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from shoplm.training import load_train_config, run_training
from shoplm.training.run_dir import RunDirectoryError, checkpoints
from shoplm.training.trainer import fsdp_unit_classes
from tests.helpers.server import ServerProcess
from tests.training.conftest import logged_losses, shoplm, tiny_config, write_config


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "model.safetensors")


@pytest.mark.parametrize(
    ("task", "whole_words"), [("classify", False), ("mlm", False), ("mlm", True), ("rtd", False), ("rtd", True)]
)
def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(
    tmp_path: Path, reviews_dir: Path, task: str, whole_words: bool
) -> None:
    # Dropout on: resuming must restore the RNG state too, not only weights and optimizer (and for
    # mlm and rtd the masks and the generator's samples, which the RNG also draws).
    training = {"whole_word_masking": True} if whole_words else {}
    config = tiny_config(tmp_path / "full", reviews_dir, task=task, model={"dropout": 0.1}, training=training)
    full = run_training(load_train_config(write_config(tmp_path / "full.yaml", config))).run_dir
    # A run that "crashed" after step 3: its directory as it was then.
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed, ignore=shutil.ignore_patterns("checkpoint-6", "final"))
    resumed_config = write_config(tmp_path / "resumed.yaml", {**config, "output_dir": str(crashed)})

    with pytest.raises(RunDirectoryError, match="--resume"):
        run_training(load_train_config(resumed_config))
    run_training(load_train_config(resumed_config), resume=True)

    expected, actual = weights(full), weights(crashed)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    assert logged_losses(crashed / "checkpoint-6") == pytest.approx(logged_losses(full / "checkpoint-6"), abs=1e-6)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path: Path, reviews_dir: Path) -> None:
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "fresh", reviews_dir))

    done = shoplm("train", str(config), "--resume", cwd=tmp_path)

    assert done.returncode == 2
    assert "nothing to resume" in done.stderr and "Traceback" not in done.stderr


def test_resuming_a_run_at_its_last_step_is_refused(tmp_path: Path, reviews_dir: Path) -> None:
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "run", reviews_dir))
    run = run_training(load_train_config(config)).run_dir

    resumed = shoplm("train", str(config), "--resume", cwd=tmp_path)
    both = shoplm("train", str(config), "--resume", "--overwrite", cwd=tmp_path)

    # max_steps 6 is not a whole number of epochs: the Trainer would take a 7th step from checkpoint-6.
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert "nothing left to train: checkpoint-6 is at step 6 and training.max_steps is 6" in resumed.stderr
    assert [path.name for path in checkpoints(run)] == ["checkpoint-3", "checkpoint-6"]
    assert both.returncode == 2
    assert "--overwrite starts the run again and --resume continues it; pass one of them" in both.stderr


def test_resuming_from_another_models_checkpoint_is_a_clear_error(tmp_path: Path, reviews_dir: Path) -> None:
    narrow = tiny_config(tmp_path / "narrow", reviews_dir, training={"max_steps": 3})
    run = run_training(load_train_config(write_config(tmp_path / "narrow.yaml", narrow))).run_dir
    checkpoint = run / "checkpoint-3"
    wide = tiny_config(tmp_path / "wide", reviews_dir, model={"hidden_size": 64})

    done = shoplm("train", str(write_config(tmp_path / "wide.yaml", wide)), "--resume-from", str(checkpoint),
                  cwd=tmp_path)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot resume from {checkpoint}: it holds another model (" in done.stderr
    assert "is [32] there and [64] in this config's model" in done.stderr


def test_a_run_directory_that_cannot_be_made_is_named(tmp_path: Path, reviews_dir: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run\n")
    for run_dir, message in ((a_file, f"the run directory {a_file} is a file"),
                             (a_file / "run", f"cannot create the run directory {a_file / 'run'}: Not a directory")):
        config = write_config(tmp_path / "c.yaml", tiny_config(run_dir, reviews_dir))
        with pytest.raises(RunDirectoryError, match=re.escape(message)):
            run_training(load_train_config(config))
    assert a_file.read_text() == "not a run\n"


def test_a_finished_run_without_checkpoints_is_not_trained_over_by_accident(tmp_path: Path, reviews_dir: Path) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, training={"eval_strategy": "no", "save_strategy": "no"})
    path = write_config(tmp_path / "c.yaml", config)
    first = run_training(load_train_config(path)).final_dir
    kept = weights(first.parent)

    with pytest.raises(RunDirectoryError, match=r"already holds a trained model \(final/\); pass --overwrite"):
        run_training(load_train_config(path))
    for name, tensor in weights(first.parent).items():
        torch.testing.assert_close(tensor, kept[name], rtol=0, atol=0)  # untouched
    assert run_training(load_train_config(path), overwrite=True).final_dir == first


def test_ctrl_c_says_which_checkpoint_to_resume_from(tmp_path: Path, reviews_dir: Path) -> None:
    training = {"max_steps": 100_000, "eval_strategy": "no", "save_strategy": "steps", "save_steps": 2}
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "run", reviews_dir, training=training))
    # SIGINT as a terminal's Ctrl-C sends it (a shell may start background jobs with it ignored).
    # Output to a file, not a pipe: nobody reads a pipe while the test waits, and a full one
    # would stop the run in its next write.
    log = tmp_path / "train.log"
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "shoplm", "train", str(config)], cwd=tmp_path, stdout=output, stderr=output,
            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 300
        # Any complete checkpoint (its trainer state is written last): save_total_limit deletes the
        # early ones as fast as the run makes new ones.
        while not list((tmp_path / "run").glob("checkpoint-*/trainer_state.json")) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    stderr = log.read_text(encoding="utf-8")

    assert process.returncode == 130
    assert "interrupted; the newest checkpoint is" in stderr
    assert f"Continue with: shoplm train {config} --resume" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("problem", ["empty training file", "finished run"])
def test_bad_inputs_stop_a_multi_process_run_before_torchrun_starts(
    tmp_path: Path, reviews_dir: Path, problem: str
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    config = tiny_config(tmp_path / "run", reviews_dir)
    if problem == "empty training file":
        config["data"] = {"train": [str(empty)], "validation": [str(reviews_dir / "validation.jsonl")]}
        expected = "empty.jsonl: the file holds no rows"
    else:
        (tmp_path / "run" / "final").mkdir(parents=True)
        expected = "already holds a trained model"

    done = shoplm("train", str(write_config(tmp_path / "c.yaml", config)), "--nproc", "2", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.count(expected) == 1  # one message, not one per process
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory, reviews_dir: Path) -> tuple[Path, Path]:
    """The same global batch of 8: one process of 8, and two processes of 4 under torchrun."""
    root = tmp_path_factory.mktemp("ddp")
    # float32 on every CPU ('auto' would take bf16 on CPUs with AVX512-BF16): the curves are
    # compared to float32 rounding.
    training = {"max_steps": 8, "eval_strategy": "no", "save_strategy": "steps", "save_steps": 8,
                "mixed_precision": "no"}
    single = tiny_config(root / "single", reviews_dir, training={**training, "batch_size": 8})
    double = tiny_config(root / "double", reviews_dir, training={**training, "batch_size": 4})
    for name, config, extra in (("single", single, []), ("double", double, ["--nproc", "2"])):
        done = shoplm("train", str(write_config(root / f"{name}.yaml", config)), *extra, cwd=root)
        assert done.returncode == 0, done.stderr[-3000:]
    return root / "single", root / "double"


def test_two_process_ddp_follows_the_single_process_loss_curve(ddp_runs: tuple[Path, Path]) -> None:
    single, double = ddp_runs

    one, two = logged_losses(single / "checkpoint-8"), logged_losses(double / "checkpoint-8")

    assert len(one) == len(two) == 8
    # Same data order, same initial weights, gradients averaged across the two halves: only the
    # summation order differs, so the curves agree to float32 rounding.
    assert two == pytest.approx(one, rel=1e-3)
    info = json.loads((double / "run_info.json").read_text())
    assert (info["world_size"], info["distributed_backend"], info["model_wrapper"]) == (
        2, "gloo", "DistributedDataParallel"
    )
    info = json.loads((single / "run_info.json").read_text())
    assert (info["world_size"], info["distributed_backend"], info["device"], info["mixed_precision"]) == (
        1, None, "cpu", "no"
    )


def test_a_ddp_checkpoint_loads_like_a_single_process_one(ddp_runs: tuple[Path, Path]) -> None:
    single, double = ddp_runs

    one, two = weights(single), weights(double)

    assert one.keys() == two.keys()
    # Adam's normalised steps turn rounding differences in near-zero gradients into differences
    # of up to a few learning-rate steps; a different data order or doubled gradients would
    # move the weights by far more.
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-2


def test_a_ddp_run_publishes_and_serves_like_the_single_process_run(
    ddp_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    single, double = ddp_runs
    repository = tmp_path / "models"
    for name, run in (("single", single), ("double", double)):
        done = shoplm("publish", str(run), "--as", name, "--repository", str(repository), cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    config = {
        "server": {"model_repository": str(repository)},
        "models": [{"name": name, "task": "classify", "source": "repository"} for name in ("single", "double")],
    }
    texts = np.array(["质量很好，很满意".encode(), "太差了，退货".encode(), "物流一般".encode()], dtype=object)

    with ServerProcess(tmp_path, config) as server:
        client = triton_http.InferenceServerClient(server.http_address)
        answers = {}
        for name in ("single", "double"):
            text = triton_http.InferInput("text", [len(texts)], "BYTES")
            text.set_data_from_numpy(texts)
            answers[name] = client.infer(name, [text]).as_numpy("probabilities")

    assert answers["double"].shape == (3, 2)
    # The weights that differ at all differ where gradients are near zero (see above); the answers
    # agree to about 1e-6, far closer than two runs with other data or initial weights would.
    np.testing.assert_allclose(answers["double"], answers["single"], atol=1e-4)


@pytest.mark.parametrize(
    ("model", "units"),
    [
        (lambda: RobertaForSequenceClassification(RobertaConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)),
         ["RobertaLayer"]),
        (lambda: GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                                            eos_token_id=0)), ["GPT2Block"]),
        (lambda: LlamaForCausalLM(LlamaConfig(
            vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1)), ["LlamaDecoderLayer"]),
    ],
    ids=["roberta", "gpt2", "llama"],
)
def test_fsdp_shards_each_transformer_layer_and_not_the_embeddings_block(
    model: Callable[[], torch.nn.Module], units: list[str]
) -> None:
    built = model()

    # RoBERTa declares its embeddings block unsplittable too; FSDP must not wrap it, since the
    # input embedding matrix inside it gets a unit of its own.
    assert fsdp_unit_classes(built) == units
