"""The set of served models: their states, versions, engines; load and unload."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import torch

from shoplm.config import ModelConfig, ServeConfig
from shoplm.serving.engine.batching import BatchEngine
from shoplm.serving.engine.compute import ComputeLoop
from shoplm.serving.engine.encoder_runner import EncoderRunner
from shoplm.serving.engine.generation import GenerationEngine
from shoplm.serving.engine.healing import TokenHealer
from shoplm.serving.engine.llama_cpp_runtime import LlamaCppModel, load_llama_cpp
from shoplm.serving.errors import ModelNotFoundError, ModelNotReadyError
from shoplm.serving.loading import LoadedModel, ModelSourceError, load_model, resolve_source
from shoplm.serving.metrics import ServerMetrics
from shoplm.textproc import TextPipeline

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ModelState(StrEnum):
    """Lifecycle of a configured model."""

    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    UNLOADED = "unloaded"
    FAILED = "failed"


@dataclass
class ModelHandle:
    """One loaded version of a model with everything needed to answer requests."""

    config: ModelConfig
    version: str
    loaded: LoadedModel | LlamaCppModel
    pipeline: TextPipeline
    engine: BatchEngine | GenerationEngine
    runner: EncoderRunner | None
    loaded_at: float = field(default_factory=time.time)
    healer: TokenHealer | None = None  # for completions when the config asks for token healing

    @property
    def task(self) -> str:
        return self.config.task

    def close(self) -> None:
        self.engine.close(drain=True)
        if isinstance(self.loaded, LlamaCppModel):
            self.loaded.runtime.close()  # llama.cpp's memory is not the garbage collector's


@dataclass
class ModelEntry:
    """A configured model name and what is loaded under it now."""

    config: ModelConfig
    state: ModelState = ModelState.UNLOADED
    handle: ModelHandle | None = None
    error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelRegistry:
    """Loads, serves and unloads the models named in the serve config."""

    def __init__(self, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.entries = {model.name: ModelEntry(model) for model in config.models}
        self.compute = ComputeLoop()

    def entry(self, name: str) -> ModelEntry:
        """The entry named ``name``; 404 when no such model is configured."""
        try:
            return self.entries[name]
        except KeyError:
            known = ", ".join(sorted(self.entries)) or "none"
            raise ModelNotFoundError(f"model {name!r} does not exist; served models: {known}", param="model") from None

    def ready(self, name: str, version: str | None = None) -> ModelHandle:
        """The handle answering requests for ``name`` (and ``version`` if given)."""
        entry = self.entry(name)
        handle = entry.handle
        if handle is None or entry.state not in (ModelState.READY, ModelState.LOADING):
            if entry.state is ModelState.FAILED:  # the reason (a path, a trace) is for admins only
                raise ModelNotReadyError(f"model {name!r} failed to load; GET /admin/models shows why")
            raise ModelNotReadyError(f"model {name!r} is {entry.state.value}")
        if version is not None and version != handle.version:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version!r} loaded; loaded version: {handle.version}",
                param="version",
            )
        return handle

    def is_ready(self, name: str) -> bool:
        entry = self.entries.get(name)
        return entry is not None and entry.handle is not None and entry.state is ModelState.READY

    async def load_startup_models(self) -> None:
        """Load every model marked ``load_on_start``; a failure is logged and leaves it FAILED."""
        for entry in self.entries.values():
            if entry.config.load_on_start:
                await self._load_or_log(entry.config.name)

    async def _load_or_log(self, name: str) -> str | None:
        """Load ``name``; if that fails, log why (a warning for an optional model with no files) and
        return the reason. The entry records the failure either way (see ``load``)."""
        config = self.entry(name).config
        try:
            await self.load(name)
        except ModelSourceError as error:  # no files, a bad path: the reason is the message
            if config.required:
                logger.error("model failed to load: %s", error, extra={"model": name})
            else:
                logger.warning("optional model not loaded: %s", error, extra={"model": name})
            return str(error)
        except Exception as error:
            logger.exception("model failed to load", extra={"model": name})
            return str(error)
        return None

    async def load(self, name: str, version: str | None = None, path: Path | None = None) -> ModelEntry:
        """Load ``name`` (optionally another version or path) and swap it in when ready."""
        entry = self.entry(name)
        async with entry.lock:
            previous_state = entry.state
            entry.state = ModelState.LOADING
            started = time.perf_counter()
            try:
                handle = await _in_short_lived_thread(self._build, entry.config, version, path)
            except Exception as error:
                entry.state = previous_state if entry.handle is not None else ModelState.FAILED
                entry.error = str(error)
                self.metrics.model_events.labels(name, version or entry.config.version, "failed").inc()
                raise
            old, entry.handle = entry.handle, handle
            entry.state, entry.error = ModelState.READY, None
            self.metrics.model_load_time.labels(name).observe(time.perf_counter() - started)
            self.metrics.model_events.labels(name, handle.version, "loaded").inc()
            self.metrics.model_memory.labels(name, handle.version).set(handle.loaded.parameter_bytes)
            logger.info("model loaded", extra={"model": name, "version": handle.version})
            if old is not None:
                await asyncio.to_thread(self._release, old)
            return entry

    async def apply_config(self, config: ServeConfig) -> dict[str, Any]:
        """Bring the served models in line with a new config, each swap without downtime.

        Changed models load their new version in the background and swap in when warm; new
        ones load (if ``load_on_start``); removed ones finish their requests and unload. A model
        that fails to load does not stop the others: it is listed under ``failed`` with the
        reason, and keeps serving its previous version if it had one.
        """
        summary: dict[str, Any] = {"loaded": [], "reloaded": [], "unloaded": [], "unchanged": [], "failed": {}}
        wanted = {model.name: model for model in config.models}
        for name in [name for name in self.entries if name not in wanted]:
            await self.unload(name)
            del self.entries[name]
            summary["unloaded"].append(name)
        for name, model in wanted.items():
            entry = self.entries.get(name)
            if entry is not None and entry.config == model and entry.state is not ModelState.FAILED:
                summary["unchanged"].append(name)
                continue
            if entry is None:
                entry = self.entries[name] = ModelEntry(model)
            serving = entry.handle is not None
            entry.config = model
            if not (model.load_on_start or serving):
                summary["unchanged"].append(name)
                continue
            failure = await self._load_or_log(name)  # the next models apply either way
            if failure is not None:
                summary["failed"][name] = failure
            else:
                summary["reloaded" if serving else "loaded"].append(name)
        self.config = config
        return summary

    async def unload(self, name: str) -> ModelEntry:
        """Finish in-flight requests of ``name``, then free its memory."""
        entry = self.entry(name)
        async with entry.lock:
            if entry.handle is None:
                entry.state = ModelState.UNLOADED
                return entry
            entry.state = ModelState.UNLOADING
            handle, entry.handle = entry.handle, None
            await asyncio.to_thread(self._release, handle)
            entry.state = ModelState.UNLOADED
            return entry

    async def close(self) -> None:
        """Unload everything (used at shutdown, after in-flight requests finished)."""
        for name in list(self.entries):
            await self.unload(name)
        self.compute.stop()

    def _build(self, config: ModelConfig, version: str | None, path: Path | None) -> ModelHandle:
        source = resolve_source(config, self.config.server.model_repository, version, path)
        loaded: LoadedModel | LlamaCppModel
        loaded = load_llama_cpp(config, source) if config.engine == "llama_cpp" else load_model(config, source)
        pipeline = TextPipeline(loaded.preprocessing, loaded.tokenizer)
        engine: BatchEngine | GenerationEngine
        runner: EncoderRunner | None = None
        # Warm-ups run on the compute thread: the only thread that runs torch kernels for long.
        if config.task == "generate":
            engine = GenerationEngine(
                model=config.name, version=source.version, loaded=loaded,
                batching=config.batching, metrics=self.metrics, compute=self.compute,
            )
            if config.warmup:
                try:
                    self.compute.call(engine.decoder.warm_up)
                except BaseException:
                    engine.close(drain=False)
                    raise
        else:
            assert isinstance(loaded, LoadedModel)
            runner = EncoderRunner(loaded, config)
            if config.warmup:
                warm_batch = pipeline.encode(["warm up"])
                self.compute.call(lambda: runner.run(warm_batch, [{"top_k": 1}]))
            engine = BatchEngine(
                model=config.name, version=source.version, batching=config.batching,
                pad=pipeline.pad, run=runner.run, metrics=self.metrics, compute=self.compute,
            )
        healer = TokenHealer(loaded.tokenizer) if config.token_healing else None
        return ModelHandle(config, source.version, loaded, pipeline, engine, runner, healer=healer)

    def _release(self, handle: ModelHandle) -> None:
        handle.close()
        name, version = handle.config.name, handle.version
        self.metrics.model_events.labels(name, version, "unloaded").inc()
        self.metrics.model_memory.labels(name, version).set(0)
        device = handle.loaded.device
        del handle
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        _return_freed_heap_to_os()
        logger.info("model unloaded", extra={"model": name, "version": version})


async def _in_short_lived_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in a thread that ends with it.

    Loading runs torch kernels; a pooled thread would keep its OpenMP team alive afterwards and
    slow the compute thread down (see ``engine.compute``). A thread that exits takes it along.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            result = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(_settle, future, None, error)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=target, name="model-load", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _return_freed_heap_to_os() -> None:
    """glibc keeps freed tensors' pages; malloc_trim hands them back so unloading shows in RSS."""
    library = ctypes.util.find_library("c")
    if library:
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
            ctypes.CDLL(library).malloc_trim(0)
