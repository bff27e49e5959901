"""The ``shoplm`` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shoplm import __version__

if TYPE_CHECKING:
    from shoplm.config import ServeConfig, ServerConfig

# No model hub here: every model comes from a package or a local path, so never try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
if not sys.stderr.isatty():
    # Loading and saving bars (transformers, datasets) draw with carriage returns: in a log file or
    # a pipe they are noise around the output. Training keeps its own progress lines.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

app = typer.Typer(
    name="shoplm",
    help="Language models for a retail app: data, training, serving and the shop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shoplm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """shoplm: language models inside a retail app."""


def _load_serve_config(path: Path) -> ServeConfig:
    """The validated config, or exit 2 with the message naming the bad field."""
    from shoplm.config import ConfigError, load_serve_config

    try:
        return load_serve_config(path)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: Annotated[Path, typer.Option(help="Serving config (YAML).")] = Path("configs/serve.yaml"),
    host: Annotated[str | None, typer.Option(help="HTTP/gRPC bind address (default: from config, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: from config, 8100).")] = None,
    grpc_port: Annotated[
        int | None, typer.Option(help="gRPC port; 0 disables gRPC (default: from config, 8101).")
    ] = None,
) -> None:
    """Run the model server (OpenAI + KServe v2 over HTTP, KServe v2 over gRPC)."""
    from shoplm.serving.server import ListenError, run

    serve_config = _load_serve_config(config)
    options = {"host": host, "port": port, "grpc_port": grpc_port}
    serve_config.server = _with_options(serve_config.server, {k: v for k, v in options.items() if v is not None})
    try:
        run(serve_config, config.resolve())
    except ListenError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(3) from None  # uvicorn's exit code when the HTTP port cannot be opened


def _with_options(server: ServerConfig, options: dict[str, object]) -> ServerConfig:
    """The config's server section with the command-line options applied, validated like the file."""
    from pydantic import ValidationError

    from shoplm.config import ServerConfig

    try:
        return ServerConfig.model_validate({**server.model_dump(), **options})
    except ValidationError as error:
        problems = []
        for entry in error.errors():
            field = "--" + str(entry["loc"][0]).replace("_", "-") if entry["loc"] else "options"
            problems.append(f"{field}: {entry['msg'].removeprefix('Value error, ')}")
        typer.echo("error: " + "; ".join(problems), err=True)
        raise typer.Exit(2) from None


@app.command("check-config")
def check_config(
    config: Annotated[Path, typer.Argument(help="Serving or training config (YAML).")] = Path("configs/serve.yaml"),
) -> None:
    """Validate a serving config (print its models) or a training config (print what it trains)."""
    from shoplm.config import ConfigError, read_yaml_mapping

    try:
        raw = read_yaml_mapping(config)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    # Only a training config has a top-level task; a serving config's tasks sit under models.
    if "task" in raw and "models" not in raw:
        _check_train_config(config)
        return
    for model in _load_serve_config(config).models:
        typer.echo(f"{model.name}: task={model.task} source={model.source} version={model.version}")


def _check_train_config(path: Path) -> None:
    from shoplm.config import ConfigError
    from shoplm.training.config import load_train_config

    try:
        config = load_train_config(path)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    data = config.data
    source = (f"corpus {data.corpus}" if data.corpus else f"directory {data.dir}" if data.dir
              else "files " + ", ".join(str(file) for file in data.train))
    if data.extra_corpora or data.extra_train:
        source += " + " + ", ".join([*data.extra_corpora, *(str(file) for file in data.extra_train)])
    model = config.model
    start = f"{model.architecture} from scratch"
    if model.from_pretrained:
        start = f"from {model.from_pretrained}"
        if not model.from_pretrained.startswith("package:") and not Path(model.from_pretrained).exists():
            start += " (not there yet: train that run first)"
    training = config.training
    schedule = f"epochs={training.epochs:g}"
    if training.time_budget_minutes is not None:
        schedule += f" time_budget_minutes={training.time_budget_minutes:g}"
    typer.echo(f"training config: task={config.task} model={start}")
    typer.echo(f"data: {source}")
    typer.echo(f"run directory: {config.output_dir}")
    typer.echo(f"{schedule} batch_size={training.batch_size} learning_rate={training.learning_rate:g}")


def _register_commands() -> None:
    from shoplm.data.cli import data_app
    from shoplm.training import cli as training_cli

    app.add_typer(data_app, name="data")
    app.command("train")(training_cli.train)
    app.command("eval")(training_cli.evaluate)
    app.command("publish")(training_cli.publish)


_register_commands()
