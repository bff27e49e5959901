"""``shoplm train``, ``shoplm eval`` and ``shoplm publish``.

User errors (a bad config field, a missing file, a run directory in the way) print one line
naming the problem and exit 2; heavy imports happen only inside the commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shoplm.config import ConfigError


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` to stderr; the caller raises the returned Exit(2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _user_errors() -> tuple[type[Exception], ...]:
    from shoplm.evaluation.evaluate import EvaluationError
    from shoplm.training.data import TrainingDataError
    from shoplm.training.models import ModelSpecError
    from shoplm.training.publish import PublishError
    from shoplm.training.run_dir import RunDirectoryError

    return (ConfigError, TrainingDataError, ModelSpecError, RunDirectoryError, PublishError, EvaluationError,
            FileNotFoundError)


def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML), e.g. configs/train/sentiment.yaml.")],
    nproc: Annotated[int, typer.Option(min=1, help="Processes on this machine (DDP through torchrun).")] = 1,
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint in the run directory.")] = False,
    resume_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint directory.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Start again in a run directory that has checkpoints or a final model.")
    ] = False,
    output_dir: Annotated[Path | None, typer.Option(help="Run directory (default: the config's output_dir).")] = None,
) -> None:
    """Train a model (causal LM, masked LM, chat or classifier) as the config says."""
    from shoplm.training.config import load_train_config

    overrides: dict[str, object] = {"output_dir": str(output_dir)} if output_dir else {}
    try:
        loaded = load_train_config(config, overrides)
    except ConfigError as error:
        raise fail(str(error)) from None
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        from shoplm.training.data import resolve_files
        from shoplm.training.run_dir import check_run_dir

        # Caught here, a bad input gets one message instead of one per process and torchrun's traceback.
        try:
            check_run_dir(loaded.output_dir, resume=resume_from or resume, overwrite=overwrite,
                          training=loaded.training)
            resolve_files(loaded.data, loaded.training.eval_strategy)
        except _user_errors() as error:
            raise fail(str(error)) from None
        raise typer.Exit(_launch_torchrun(config, nproc, resume, resume_from, overwrite, output_dir))
    from shoplm.training.trainer import run_training

    main_process = int(os.environ.get("RANK", "0")) == 0
    budget = loaded.training.time_budget_minutes
    if main_process and budget is not None:
        typer.echo(f"time budget: training stops after {budget:g} minutes; the progress bar counts the steps "
                   "of the configured epochs, an upper bound", err=True)
    try:
        result = run_training(loaded, resume=resume_from or resume, overwrite=overwrite, command=sys.argv)
    except _user_errors() as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        if main_process:
            typer.echo(_interrupted_message(loaded.output_dir, config, output_dir), err=True)
        raise typer.Exit(130) from None
    if main_process:
        typer.echo(f"final model: {result.final_dir}" + _run_summary(result.metrics))


def _interrupted_message(run_dir: Path, config: Path, output_dir: Path | None) -> str:
    from shoplm.training.run_dir import checkpoints

    saved = checkpoints(run_dir) if run_dir.is_dir() else []
    if not saved:
        return "interrupted before the first checkpoint; nothing to resume"
    command = f"shoplm train {config}" + (f" --output-dir {output_dir}" if output_dir else "") + " --resume"
    return f"interrupted; the newest checkpoint is {saved[-1]}. Continue with: {command}"


def _run_summary(metrics: dict[str, Any]) -> str:
    """Throughput, and where a time budget ended the run, the step and epoch it reached."""
    parts = []
    if samples := metrics.get("train_samples_per_second"):
        parts.append(f"{samples:.1f} samples/s")
    if metrics.get("time_budget_spent"):
        parts.append(f"time budget spent at step {metrics['global_step']}, epoch {metrics.get('epoch', 0):.2f}")
    return f"  ({'; '.join(parts)})" if parts else ""


def _launch_torchrun(
    config: Path, nproc: int, resume: bool, resume_from: Path | None, overwrite: bool, output_dir: Path | None
) -> int:
    """Run this same command under torchrun with ``nproc`` processes; return its exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "shoplm", "train", str(config)]
    command += ["--resume"] if resume else []
    command += ["--resume-from", str(resume_from)] if resume_from else []
    command += ["--overwrite"] if overwrite else []
    command += ["--output-dir", str(output_dir)] if output_dir else []
    # One OpenMP thread pool per process would oversubscribe the cores; split them instead.
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached torchrun and its workers as well: let them stop and say where to resume.
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
        return 130


def evaluate(
    target: Annotated[str, typer.Argument(help="A run directory, a model directory, or a published model name.")],
    split: Annotated[str | None, typer.Option(help="Split of the run's data to measure on (default: test).")] = None,
    data: Annotated[Path | None, typer.Option(help="A JSON-lines file to measure on instead of a split.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option(help="Report directory (default: <run>/eval-<split> for runs).")] = None,
    repository: Annotated[Path | None, typer.Option(help="Model repository for a published name.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per evaluation batch.")] = 64,
) -> None:
    """Measure a model: classifiers get accuracy, F1, ROC-AUC, PR-AUC, calibration; LMs perplexity.

    Masked LMs are measured on 15% of each text's tokens (at least one), masked with a fixed seed.
    """
    from shoplm.evaluation.evaluate import evaluate as run_evaluation
    from shoplm.evaluation.report import load_log_history, write_report
    from shoplm.training.eval_target import resolve_eval_target

    if out is not None:
        _check_report_dir(out)  # before the evaluation, not after it
    try:
        resolved = resolve_eval_target(target, split, data, repository)
        outcome = run_evaluation(resolved.model_dir, resolved.data, batch_size=batch_size)
    except _user_errors() as error:
        raise fail(str(error)) from None
    metrics = {"model": target, "data": resolved.data.name, **outcome.metrics}
    report_dir = out or (resolved.run_dir / f"eval-{(split or 'test') if data is None else resolved.data.stem}"
                         if resolved.run_dir else None)
    if report_dir is not None:
        probabilities = outcome.probabilities
        if out is None:  # an --out was made before the evaluation
            _check_report_dir(report_dir)
        write_report(
            report_dir, metrics, labels=outcome.labels if probabilities is not None else None,
            probabilities=probabilities, title=f"{target} on {resolved.data.name}",
            log_history=load_log_history(resolved.run_dir) if resolved.run_dir else None,
        )
    if as_json:
        typer.echo(json.dumps(_scalars(metrics), ensure_ascii=False))
        return
    lines = {key: f"{value:.4f}" if isinstance(value, float) else str(value)
             for key, value in _scalars(metrics).items()}
    if report_dir is not None:
        lines["report"] = str(report_dir / "eval_report.html")
    width = max(map(len, lines))
    for key, value in lines.items():
        typer.echo(f"{key:>{width}}: {value}")


def _check_report_dir(directory: Path) -> None:
    """Create the report directory, or exit 2 saying why it cannot be."""
    if directory.exists() and not directory.is_dir():
        raise fail(f"report directory {directory} is a file; give --out a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise fail(f"cannot create the report directory {directory}: {error.strerror or error}") from None


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metrics.items() if not isinstance(value, (list, dict))}


def publish(
    run: Annotated[Path, typer.Argument(help="A finished run directory (or a model directory).")],
    name: Annotated[str, typer.Option("--as", help="Model name in the repository, e.g. sentiment.")],
    repository: Annotated[Path | None, typer.Option(
        help="Model repository (default: SHOPLM_MODEL_REPOSITORY, else configs/serve.yaml's, else ./models)."
    )] = None,
    version: Annotated[str | None, typer.Option(help="Version (default: one above the highest).")] = None,
    server: Annotated[str | None, typer.Option(help="Model server URL to hot-load the new version on.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="SHOPLM_ADMIN_API_KEY", help="Admin key for --server.")] = None,
) -> None:
    """Publish a trained model as a new version in the model repository (and optionally load it)."""
    from shoplm.training.eval_target import default_repository
    from shoplm.training.publish import publish as publish_run

    if server:
        _check_server_takes(server, api_key, name)  # before publishing, so a refusal leaves no version behind
    try:
        target = publish_run(run, name, repository or default_repository(), version)
    except (*_user_errors(), ValueError) as error:  # type: ignore[misc]
        raise fail(str(error)) from None
    typer.echo(f"published {name} version {target.name}: {target}")
    if server:
        from shoplm.client import ModelClient, ModelServerError

        try:
            with ModelClient(server, api_key=api_key, timeout=600) as client:
                entry = client.load_model(name, version=target.name)
        except ModelServerError as error:
            raise fail(f"published, but the server did not load it: {error}") from None
        typer.echo(f"server {server}: {name} now serves version {entry.get('version')}")


def _check_server_takes(server: str, api_key: str | None, name: str) -> None:
    """Exit 2 unless ``server`` is an admin URL that answers this key and has ``name`` in its config."""
    from shoplm.client import ModelClient, ModelServerError

    try:
        with ModelClient(server, api_key=api_key, timeout=30, max_retries=1) as client:
            configured = [model["name"] for model in client.admin_models()]
    except ValueError as error:
        raise fail(f"--server: {error}") from None
    except ModelServerError as error:
        raise fail(f"nothing published: --server {server}: {error}") from None
    if name not in configured:
        raise fail(
            f"nothing published: the server at {server} has no model {name!r} in its config (it has "
            f"{', '.join(configured) or 'none'}); add one with source: repository, then publish"
        )
