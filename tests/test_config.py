"""Loading serve.yaml: defaults, path resolution, and errors that name the bad field."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shoplm.config import ConfigError, load_serve_config, read_key_file
from tests.helpers.server import free_port

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid_and_declares_the_default_models() -> None:
    config = load_serve_config(REPO / "configs" / "serve.yaml")

    assert [(m.name, m.task, m.required) for m in config.models] == [
        ("chat", "generate", True), ("embed", "embed", True),
        ("sentiment", "classify", False), ("suggest", "generate", False),
    ]
    assert (config.server.host, config.server.port, config.server.grpc_port) == ("127.0.0.1", 8100, 8101)


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {model_repository: repo}\nmodels:\n  - {name: m, task: embed, source: ckpt}\n")

    config = load_serve_config(path)

    assert config.server.model_repository == tmp_path / "repo"
    assert config.models[0].source == str(tmp_path / "ckpt")


def test_environment_overrides_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shoplm.config import env_settings

    monkeypatch.setenv("SHOPLM_MODEL_REPOSITORY", str(tmp_path / "elsewhere"))
    env_settings.cache_clear()
    try:
        config = load_serve_config(write(tmp_path, "server: {model_repository: repo}\n"))
    finally:
        env_settings.cache_clear()

    assert config.server.model_repository == tmp_path / "elsewhere"


def test_a_user_dictionary_resolves_against_the_config_directory(tmp_path: Path) -> None:
    text = "models:\n  - {name: m, task: embed, preprocessing: {segment: {enabled: true, user_dict: words.txt}}}\n"

    config = load_serve_config(write(tmp_path, text))

    preprocessing = config.models[0].preprocessing
    assert preprocessing is not None
    assert preprocessing.segment.user_dict == tmp_path / "words.txt"


@pytest.mark.parametrize(("value", "level"), [("WARNING", "warning"), (" debug ", "debug")])
def test_environment_sets_the_log_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, level: str
) -> None:
    from shoplm.config import env_settings

    monkeypatch.setenv("SHOPLM_LOG_LEVEL", value)
    env_settings.cache_clear()
    try:
        config = load_serve_config(write(tmp_path, "server: {log_level: error}\n"))
    finally:
        env_settings.cache_clear()

    assert config.server.log_level == level


def test_a_bad_log_level_in_the_environment_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shoplm.config import env_settings

    monkeypatch.setenv("SHOPLM_LOG_LEVEL", "verbose")
    env_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="SHOPLM_LOG_LEVEL: 'verbose' is not one of debug, info, warning, error"):
            load_serve_config(write(tmp_path, "{}\n"))
    finally:
        env_settings.cache_clear()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("models:\n  - {name: m, task: embedd}\n", ["models.0.task", "'embed'"]),
        ("models:\n  - {name: m, task: embed, colour: red}\n", ["models.0.colour", "Extra inputs"]),
        ("models:\n  - {name: m, task: embed, sorce: package}\n", ["models.0.sorce", "did you mean 'source'?"]),
        ("models:\n  - {name: m, task: embed, preprocessing: {truncat: {}}}\n",
         ["models.0.preprocessing.truncat", "did you mean 'truncate'?"]),
        ("server: {prot: 8100}\n", ["server.prot", "did you mean 'port'?"]),
        ("models:\n  - {name: m, task: embed, device: tpu}\n", ["models.0.device", "tpu"]),
        ("models:\n  - {name: m, task: embed, batching: {max_batch_size: 0}}\n",
         ["models.0.batching.max_batch_size", "greater than or equal to 1"]),
        ("models:\n  - {name: m, task: generate, limits: {max_new_tokens: 10, default_max_new_tokens: 20}}\n",
         ["default_max_new_tokens (20) exceeds max_new_tokens (10)"]),
        ("models:\n  - {name: m, task: embed}\n  - {name: m, task: classify}\n", ["unique", "m"]),
        ("models:\n  - {name: 'bad name!', task: embed}\n", ["models.0.name"]),
        ("models:\n  - {name: m, task: embed, preprocessing: {truncate: {head_fraction: 1.5}}}\n",
         ["models.0.preprocessing.truncate.head_fraction"]),
        ("server: {port: 99999}\n", ["server.port", "65535"]),
        ("server: {port: 9000, grpc_port: 9000}\n", ["port and grpc_port are both 9000"]),
        ("- just\n- a list\n", ["mapping"]),
        ("models: [\n", ["not valid YAML"]),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        load_serve_config(write(tmp_path, text))

    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"auth\.admin_api_keys_file: cannot read .*keys\.txt: No such file or directory"),
        (b"\xff\xfekey\n", r"auth\.admin_api_keys_file: .*keys\.txt is not UTF-8 text"),
        (b"# only a comment\n\n", r"auth\.admin_api_keys_file: .*keys\.txt holds no keys"),  # would leave /admin open
    ],
)
def test_a_key_file_that_gives_no_keys_is_named(tmp_path: Path, content: bytes | None, message: str) -> None:
    if content is not None:
        (tmp_path / "keys.txt").write_bytes(content)

    with pytest.raises(ConfigError, match=message):
        load_serve_config(write(tmp_path, "auth: {admin_api_keys_file: keys.txt}\n"))


def test_key_files_hold_one_key_a_line_with_comments(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_text("# inference keys\nfirst\n\n  second  \n")

    config = load_serve_config(write(tmp_path, "auth: {api_keys_file: keys.txt}\n"))

    assert read_key_file(tmp_path / "keys.txt", "auth.api_keys_file") == {"first", "second"}
    assert config.auth.api_keys_file == tmp_path / "keys.txt"


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nothing\.yaml"):
        load_serve_config(tmp_path / "nothing.yaml")


def test_a_config_that_is_not_utf8_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_bytes("server: {host: café}\n".encode("latin-1"))

    with pytest.raises(ConfigError, match=r"serve\.yaml is not UTF-8 text: invalid continuation byte at byte 18"):
        load_serve_config(path)


def test_cli_reports_a_bad_config_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {name: m, task: embedd}\n")

    result = subprocess.run(
        [sys.executable, "-m", "shoplm", "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "models.0.task" in result.stderr
    assert "Traceback" not in result.stderr


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoplm", "check-config", str(path)], capture_output=True, text=True, timeout=60,
        cwd=path.parent,
    )


def test_check_config_lists_a_serving_configs_models(tmp_path: Path) -> None:
    result = check_config(write(tmp_path, "models:\n  - {name: m, task: embed, source: 'package:all-minilm-l6-v2'}\n"))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "m: task=embed source=package:all-minilm-l6-v2 version=1\n"


def test_check_config_summarises_a_training_config(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "task: classify\noutput_dir: runs/c\ndata: {corpus: reviews, extra_corpora: [news]}\n"
        "model: {from_pretrained: runs/mlm, label_names: [negative, positive]}\n"
        "training: {epochs: 3, time_budget_minutes: 8}\n"
    )

    result = check_config(path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = f"from {tmp_path / 'runs' / 'mlm'} (not there yet: train that run first)"
    assert lines[0] == f"training config: task=classify model={start}"
    assert lines[1:3] == ["data: corpus reviews + news", f"run directory: {tmp_path / 'runs' / 'c'}"]
    assert lines[3].startswith("epochs=3 time_budget_minutes=8 ")


def test_check_config_names_a_bad_training_field(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("task: mlm\noutput_dir: m\ndata: {corpus: news}\nmodel: {architecture: bert, hidden_size: 0}\n")

    result = check_config(path)

    assert result.returncode == 2
    assert "model.hidden_size: Input should be greater than or equal to 8" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--port", "70000"], "--port: Input should be less than or equal to 65535"),
        (["--grpc-port", "-1"], "--grpc-port: Input should be greater than or equal to 0"),
        (["--port", "9000", "--grpc-port", "9000"], "port and grpc_port are both 9000"),
    ],
)
def test_serve_options_are_checked_like_the_config(tmp_path: Path, options: list[str], message: str) -> None:
    path = write(tmp_path, "models: []\n")

    result = subprocess.run([sys.executable, "-m", "shoplm", "serve", "--config", str(path), *options],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_grpc_port_in_use_is_named_and_the_server_exits(tmp_path: Path) -> None:
    path = write(tmp_path, "models: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "shoplm", "serve", "--config", str(path), "--port", str(free_port()),
             "--grpc-port", str(port)], capture_output=True, text=True, timeout=60,
        )

    assert result.returncode == 3
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_every_cli_verb_has_help() -> None:
    for verb in ([], ["serve"], ["check-config"], ["data", "prepare"], ["train"], ["eval"], ["publish"]):
        result = subprocess.run([sys.executable, "-m", "shoplm", *verb, "--help"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0
        assert "Usage" in result.stdout
