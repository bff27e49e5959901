"""Generated sections of benchmarks/README.md, each between its own pair of markers."""

from __future__ import annotations

from pathlib import Path


def replace_section(readme: Path, name: str, body: str) -> None:
    """Replace the ``name`` section of ``readme`` with ``body``, keeping everything else."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{body.rstrip()}\n{end}{tail}", encoding="utf-8")
