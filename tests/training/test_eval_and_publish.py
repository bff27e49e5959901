"""`shoplm eval` and `shoplm publish` as a user runs them, up to the model server answering."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as triton_http
from transformers import AutoConfig, AutoModelForMaskedLM

from shoplm.training.publish import card_markdown, run_evaluations
from tests.helpers.server import ServerProcess, free_port
from tests.training.conftest import shoplm, tiny_config, write_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, reviews_dir: Path) -> Path:
    """A tiny sentiment classifier trained through the command line."""
    root = tmp_path_factory.mktemp("trained")
    config = tiny_config(root / "run", reviews_dir, training={"max_steps": 10, "eval_strategy": "no"})
    done = shoplm("train", str(write_config(root / "sentiment.yaml", config)), cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final model:" in done.stdout
    return root / "run"


def test_eval_prints_the_metrics_as_json_and_writes_the_report(trained: Path) -> None:
    done = shoplm("eval", str(trained), "--split", "test", "--json", cwd=trained.parent)

    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout)
    assert metrics["n"] == 60 and metrics["data"] == "test.jsonl"
    for key in ("accuracy", "roc_auc", "f1", "precision", "recall", "pr_auc"):
        assert 0.0 <= metrics[key] <= 1.0
    html = (trained / "eval-test" / "eval_report.html").read_text()
    assert html.count("<img") >= 4  # ROC, PR, confusion matrix, calibration (+ loss curves)
    report = json.loads((trained / "eval-test" / "eval_report.json").read_text())
    assert report["metrics"]["confusion_matrix"] and report["curves"]["roc"]


def test_eval_on_a_named_file_matches_the_split_of_the_same_rows(trained: Path, reviews_dir: Path) -> None:
    by_split = json.loads(shoplm("eval", str(trained), "--json", cwd=trained.parent).stdout)
    by_file = shoplm("eval", str(trained / "final"), "--data", str(reviews_dir / "test.jsonl"), "--json",
                     cwd=trained.parent)

    assert by_file.returncode == 0, by_file.stderr[-2000:]
    assert json.loads(by_file.stdout)["roc_auc"] == pytest.approx(by_split["roc_auc"])


def test_eval_measures_a_masked_lm_on_fixed_masks(tmp_path: Path, reviews_dir: Path) -> None:
    config = tiny_config(tmp_path / "mlm", reviews_dir, task="mlm",
                         training={"max_steps": 40, "learning_rate": 2e-3, "eval_strategy": "no"})
    assert shoplm("train", str(write_config(tmp_path / "mlm.yaml", config)), cwd=tmp_path).returncode == 0
    # The same architecture untrained, with the run's tokenizer and preprocessing.
    untrained = tmp_path / "untrained"
    shutil.copytree(tmp_path / "mlm" / "final", untrained)
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(untrained)).save_pretrained(untrained)
    data = str(reviews_dir / "test.jsonl")

    def measure(model: Path, *options: str) -> dict:
        done = shoplm("eval", str(model), "--data", data, "--json", *options, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    trained, rebatched, baseline = measure(tmp_path / "mlm"), measure(tmp_path / "mlm", "--batch-size", "5"), \
        measure(untrained)

    assert trained["perplexity"] == pytest.approx(math.exp(trained["loss"]))
    assert trained["n"] == 60 and 60 <= trained["tokens"] == baseline["tokens"]  # at least one mask a review
    assert rebatched["tokens"] == trained["tokens"]  # the masks do not depend on the batching
    assert rebatched["loss"] == pytest.approx(trained["loss"], rel=1e-5)
    assert trained["perplexity"] < 0.7 * baseline["perplexity"]
    assert 0.0 <= baseline["masked_accuracy"] < trained["masked_accuracy"] <= 1.0
    assert (tmp_path / "mlm" / "eval-test" / "eval_report.html").is_file()


def test_the_card_headlines_the_test_split_and_lists_the_other_evaluations(tmp_path: Path) -> None:
    run = tmp_path / "run"
    reports = {
        "validation": {"n": 60, "accuracy": 0.8, "confusion_matrix": [[1]]},
        "test": {"n": 60, "accuracy": 0.75},
        "one": {"n": 1, "data": "one.jsonl", "accuracy": 0.0},  # a check on one row, evaluated last
    }
    for index, (split, metrics) in enumerate(reports.items()):
        path = run / f"eval-{split}" / "eval_report.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"metrics": metrics}))
        os.utime(path, (1_000_000 + index, 1_000_000 + index))

    evaluations = run_evaluations(run)

    assert [entry["split"] for entry in evaluations] == ["test", "validation", "one"]
    assert evaluations[0] == {"split": "test", "n": 60, "accuracy": 0.75}  # scalars only
    card = {"name": "sentiment", "version": "1", "task": "classify", "architecture": "X", "run": "run",
            "data_hash": "h", "published_at": "now", "metrics": evaluations[0], "evaluations": evaluations}
    markdown = card_markdown(card)
    assert "| accuracy | 0.7500 |" in markdown
    assert "- validation: n 60, accuracy 0.8000" in markdown and "- one.jsonl: n 1, accuracy 0.0000" in markdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "no-such-run", "--json"], "no such model"),
        (["eval", "RUN", "--data", "missing.jsonl"], "data file not found"),
        (["eval", "RUN", "--data", "BAD"], "not JSON"),
        (["eval", "RUN", "--data", "NOLABEL"], "no field 'label'"),
        (["eval", "RUN", "--data", "NULLTEXT"], "nulltext.jsonl:2: field 'text' holds None, not a text"),
        (["eval", "RUN", "--data", "BINARY"], "binary.jsonl:1: not UTF-8 text (invalid start byte)"),
        (["eval", "RUN", "--split", "dev"], "--split must be one of"),
        (["eval", "RUN", "--split", "test", "--data", "BAD"], "give --split or --data, not both"),
        (["eval", "MODEL", "--split", "test"], "is a model, not a run: it has no splits"),
        (["eval", "RUN", "--out", "BAD"], "report directory {BAD} is a file; give --out a directory"),
        (["publish", "NOT_A_RUN", "--as", "sentiment"], "holds no trained model"),
        (["publish", "RUN", "--as", "bad name!", "--repository", "repo"], "name 'bad name!' is not valid"),
        (["publish", "RUN", "--as", "ok", "--repository", "repo", "--version", "../x"], "version '../x' is not valid"),
        (["publish", "RUN", "--as", "ok", "--repository", "repo", "--version", "latest"], "'latest' is reserved"),
        (["publish", "RUN", "--as", "ok", "--repository", "BAD"], "model repository {BAD}): Not a directory"),
        (["publish", "RUN", "--as", "ok", "--repository", "repo", "--server", "localhost:8100"],
         "--server: base_url must be an http:// or https:// URL with a host"),
        (["publish", "RUN", "--as", "ok", "--repository", "repo", "--server", "http://"],
         "--server: base_url must be an http:// or https:// URL with a host"),
        (["publish", "RUN", "--as", "ok", "--repository", "repo", "--server", "DEAD"],
         "nothing published: --server {DEAD}: model server unreachable"),
    ],
)
def test_bad_eval_and_publish_inputs_exit_2_with_a_message(
    trained: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "label": 1}\n{not json\n')
    (tmp_path / "nolabel.jsonl").write_text('{"text": "ok"}\n')
    (tmp_path / "nulltext.jsonl").write_text('{"text": "ok", "label": 1}\n{"text": null, "label": 0}\n')
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe{}\n")
    (tmp_path / "empty-dir").mkdir()
    replace = {"RUN": str(trained), "BAD": str(tmp_path / "bad.jsonl"), "NOLABEL": str(tmp_path / "nolabel.jsonl"),
               "NULLTEXT": str(tmp_path / "nulltext.jsonl"), "BINARY": str(tmp_path / "binary.jsonl"),
               "NOT_A_RUN": str(tmp_path / "empty-dir"), "MODEL": str(trained / "final"),
               "DEAD": f"http://127.0.0.1:{free_port()}"}

    done = shoplm(*[replace.get(arg, arg) for arg in args], cwd=tmp_path)

    assert done.returncode == 2
    assert message.format(**replace) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "repo").exists()  # nothing written, inside the repository or beside it


def test_publishing_to_a_server_that_would_refuse_the_load_publishes_nothing(trained: Path, tmp_path: Path) -> None:
    repository = tmp_path / "models"
    (tmp_path / "admin-keys").write_text("admin-secret\n")
    config = {
        "server": {"model_repository": str(repository)},
        "auth": {"admin_api_keys_file": str(tmp_path / "admin-keys")},
        "models": [{"name": "sentiment", "task": "classify", "source": "repository", "version": "latest",
                    "required": False}],
    }
    publish = ["publish", str(trained), "--repository", str(repository)]

    with ServerProcess(tmp_path, config) as server:
        no_key = shoplm(*publish, "--as", "sentiment", "--server", server.http_url, cwd=tmp_path)
        unknown = shoplm(*publish, "--as", "other", "--server", server.http_url, "--api-key", "admin-secret",
                         cwd=tmp_path)
        accepted = shoplm(*publish, "--as", "sentiment", "--server", server.http_url, "--api-key", "admin-secret",
                          cwd=tmp_path)

    assert no_key.returncode == 2 and "Traceback" not in no_key.stderr
    assert f"nothing published: --server {server.http_url}: 401: missing or invalid admin API key" in no_key.stderr
    assert unknown.returncode == 2
    assert "nothing published: the server at" in unknown.stderr
    assert "has no model 'other' in its config (it has sentiment)" in unknown.stderr
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert "sentiment now serves version 1" in accepted.stdout  # the refused attempts took no version number
    assert sorted(path.name for path in repository.iterdir()) == ["sentiment"]


def test_published_classifier_answers_on_the_model_server_and_hot_swaps(trained: Path, tmp_path: Path) -> None:
    repository = tmp_path / "models"
    config = {
        "server": {"model_repository": str(repository)},
        "models": [{"name": "sentiment", "task": "classify", "source": "repository", "version": "latest",
                    "required": False}],
    }

    # Nothing published yet: the optional model does not hold the server back.
    with ServerProcess(tmp_path, config) as server:
        assert httpx.get(f"{server.http_url}/v2/health/ready").status_code == 200
        assert httpx.get(f"{server.http_url}/v2/models/sentiment/ready").status_code == 503
        assert "Traceback" not in server.log_text()

        first = shoplm("publish", str(trained), "--as", "sentiment", "--repository", str(repository),
                       "--server", server.http_url, cwd=tmp_path)

        assert first.returncode == 0, first.stderr[-2000:]
        assert "now serves version 1" in first.stdout
        card = json.loads((repository / "sentiment" / "1" / "model_card.json").read_text())
        assert card["task"] == "classify" and card["labels"] == {"0": "negative", "1": "positive"}
        assert len(card["data_hash"]) == 64 and card["config"]["task"] == "classify" and card["preprocessing"]
        client = triton_http.InferenceServerClient(server.http_address)
        text = triton_http.InferInput("text", [2], "BYTES")
        text.set_data_from_numpy(np.array(["质量很好，很满意".encode(), "太差了，退货".encode()], dtype=object))
        result = client.infer("sentiment", [text])
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (2, 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        assert set(result.as_numpy("label").astype(str)) <= {"negative", "positive"}
        assert result.get_response()["model_version"] == "1"

        second = shoplm("publish", str(trained), "--as", "sentiment", "--repository", str(repository),
                        "--server", server.http_url, cwd=tmp_path)

        assert second.returncode == 0, second.stderr[-2000:]
        assert "now serves version 2" in second.stdout
        assert client.infer("sentiment", [text]).get_response()["model_version"] == "2"
