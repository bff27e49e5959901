"""The news corpus and the generated demo catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoplm.data import SPLITS, DataPrepError, generate_catalog, generate_queries, prepare_corpus, read_jsonl_split
from shoplm.data.catalog_vocab import CATEGORIES
from shoplm.data.corpora import rejoin_tagged


def test_tagged_tokens_are_rejoined() -> None:
    assert rejoin_tagged("迈/b 向/e 充/b 满/e") == "迈向充满"
    assert rejoin_tagged("迈向/v  充满/v  ——/w  １/m  //w") == "迈向充满——１/"


def test_news_corpus_is_plain_text_split_for_pretraining(tmp_path: Path) -> None:
    card = prepare_corpus("news", tmp_path / "news")

    assert card.rows_read == 2 * 19484
    # the two files hold the same sentences: the second adds only exact duplicates
    assert card.drops["exact_duplicate"] >= 19484
    assert 18000 < card.rows_kept < 19484
    first = next(read_jsonl_split(tmp_path / "news", "train"))
    assert set(first) == {"text"} and "/" not in first["text"][:20]
    assert card.splits["validation"].rows > 1000 and card.labels == {}
    assert card.settings["near_dup"] is True


def test_catalog_is_deterministic_and_well_formed() -> None:
    products = generate_catalog(120, seed=7)

    assert products == generate_catalog(120, seed=7)
    assert products != generate_catalog(120, seed=8)
    assert len({product.sku for product in products}) == 120
    assert {product.category for product in products} == {category.slug for category in CATEGORIES}
    assert {product.lang for product in products} == {"en", "zh"}
    for product in products:
        assert isinstance(product.price_cents, int) and product.price_cents > 0
        assert product.title and product.description and product.brand in product.title
        assert all(value in product.title for value in product.attributes.values())
    assert generate_catalog(2000)[0] == generate_catalog(1)[0]


def test_queries_come_from_the_catalog() -> None:
    products = generate_catalog(300, seed=1)
    queries = generate_queries(products, seed=1)

    assert queries == generate_queries(products, seed=1)
    assert [query.count for query in queries] == sorted((query.count for query in queries), reverse=True)
    assert {query.kind for query in queries} == {"prefix", "brand", "attribute", "noun", "category"}
    english = [query.query for query in queries if query.lang == "en"]
    assert english and all(text == text.lower() for text in english)
    brands = {product.brand.lower() for product in products}
    assert any(query.query.split()[0] in brands for query in queries if query.kind == "brand" and query.lang == "en")


def test_catalog_corpus_writes_products_queries_and_text_splits(tmp_path: Path) -> None:
    card = prepare_corpus("catalog", tmp_path / "catalog", products=200, seed=3)

    products = [json.loads(line) for line in (tmp_path / "catalog" / "products.jsonl").read_text("utf-8").splitlines()]
    queries = [json.loads(line) for line in (tmp_path / "catalog" / "queries.jsonl").read_text("utf-8").splitlines()]
    assert len(products) == 200 and products[0]["sku"] == "SKU-000001"
    assert set(products[0]) >= {"title", "description", "category", "brand", "price_cents", "attributes"}
    assert queries and set(queries[0]) == {"query", "count", "lang", "category", "kind"}
    texts = {row["text"] for split in SPLITS for row in read_jsonl_split(tmp_path / "catalog", split)}
    assert products[0]["title"] in texts
    files = ["products.jsonl", "queries.jsonl"]
    assert card.extra["catalog"] == {"seed": 3, "products": 200, "queries": len(queries), "files": files}
    assert card.settings["near_dup"] is False
    again = prepare_corpus("catalog", tmp_path / "again", products=200, seed=3)
    assert again.content_hash == card.content_hash


def test_unknown_corpus_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataPrepError, match="unknown corpus 'wiki'; choose one of: reviews, news, catalog"):
        prepare_corpus("wiki", tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seed": 2**64}, "the catalog's seed must be from 0 to 4294967295, got 18446744073709551616"),
        ({"seed": -1}, "the catalog's seed must be from 0 to 4294967295, got -1"),
        ({"products": 0}, "the catalog's number of products must be from 1 to 1,000,000, got 0"),
    ],
)
def test_catalog_settings_out_of_range_are_named(tmp_path: Path, options: dict[str, int], message: str) -> None:
    with pytest.raises(DataPrepError, match=message):
        prepare_corpus("catalog", tmp_path / "catalog", **options)
    assert not (tmp_path / "catalog").exists()  # refused before anything was written
