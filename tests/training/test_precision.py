"""Which precision 'auto' trains in, and the warning for bf16 on a CPU that only emulates it."""

from __future__ import annotations

import logging

import pytest
import torch

from shoplm.hardware import cpu_has_native_bf16
from shoplm.training import trainer


def test_native_bf16_detection_agrees_with_torch() -> None:
    # torch asks the CPU (cpuid) itself; shoplm reads the kernel's flags: two routes to one fact.
    assert cpu_has_native_bf16() == (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "no")])
def test_auto_trains_in_bf16_on_a_cpu_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: native)

    assert trainer.resolve_precision("auto", on_gpu=False) == expected


@pytest.mark.parametrize("requested", ["no", "bf16", "fp16"])
def test_an_explicit_precision_is_kept(monkeypatch: pytest.MonkeyPatch, requested: str) -> None:
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)

    assert trainer.resolve_precision(requested, on_gpu=False) == requested


def test_bf16_on_a_cpu_that_emulates_it_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)

    with caplog.at_level(logging.WARNING, logger=trainer.__name__):
        precision = trainer.resolve_precision("bf16", on_gpu=False)

    assert precision == "bf16"
    assert "emulates bfloat16" in caplog.text and "'auto'" in caplog.text


def test_bf16_on_a_cpu_that_has_it_does_not_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)

    with caplog.at_level(logging.WARNING, logger=trainer.__name__):
        trainer.resolve_precision("bf16", on_gpu=False)

    assert not caplog.records
