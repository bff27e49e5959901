"""A procedurally generated demo catalog of retail products and a search-query log derived from it.

Deterministic: the same `seed` and count give the same products and queries on every machine
(`random.Random` with a fixed seed draws from hand-written vocabularies in
`shoplm.data.catalog_vocab`). The shop seeds its demo catalog from `generate_catalog`, and the
``suggest`` query-completion model trains on the titles and queries.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from shoplm.data.catalog_vocab import CATEGORIES, SERVICES, Category, Pair

DEFAULT_PRODUCTS = 2000
DEFAULT_SEED = 0
# The card is JSON, whose integers most readers take as 64-bit at most; a demo catalog needs no more.
MAX_SEED = 2**32 - 1
MAX_PRODUCTS = 1_000_000

CURRENCY = "CNY"
# Share of products written in Chinese; the rest are in English.
CHINESE_SHARE = 0.5
MODEL_LINES = ("Air", "Lite", "Max", "Mini", "Plus", "Pro", "S", "X")


@dataclass(frozen=True)
class Product:
    """One catalog item. Money is in integer minor units (fen for CNY)."""

    sku: str
    lang: str
    title: str
    description: str
    category: str
    category_name: str
    brand: str
    price_cents: int
    currency: str = CURRENCY
    attributes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The product as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class Query:
    """A distinct search query of the log with how often it was typed."""

    query: str
    count: int
    lang: str
    category: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        """The query as JSON-ready data."""
        return asdict(self)


def generate_catalog(count: int = DEFAULT_PRODUCTS, seed: int = DEFAULT_SEED) -> list[Product]:
    """`count` products, spread evenly over the categories, the same for the same seed."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    return [_product(rng, index, CATEGORIES[index % len(CATEGORIES)]) for index in range(count)]


def _product(rng: random.Random, index: int, category: Category) -> Product:
    zh = rng.random() < CHINESE_SHARE
    lang_index = 1 if zh else 0
    noun = rng.choice(category.nouns)
    brand = rng.choice(category.brands)
    chosen = {name: rng.choice(values) for name, values in category.attributes.items()}
    features = rng.sample(category.features, k=2)
    service = rng.choice(SERVICES)
    low, high = category.price_yuan
    # Prices skewed towards the cheap end, ending in .00, .90 or .99 like real shelf prices.
    yuan = low + int((high - low) * rng.random() ** 2)
    price_cents = yuan * 100 + rng.choice((0, 90, 99))
    attribute_words = [pair[lang_index] for pair in chosen.values()]
    # A model line such as "Air 5" keeps the titles of one product type apart, as in real shops.
    model = f"{rng.choice(MODEL_LINES)} {rng.randint(1, 9)}"
    if zh:
        title = f"{brand[1]} {model} {noun[1]} {' '.join(attribute_words)}"
        description = f"{brand[1]}{noun[1]}，{features[0][1]}，{features[1][1]}。{service[1]}。"
    else:
        title = f"{brand[0]} {model} {noun[0]}, {', '.join(attribute_words)}"
        description = f"{brand[0]} {model} {noun[0]}. It {features[0][0]} and {features[1][0]}. {service[0]}."
    return Product(
        sku=f"SKU-{index + 1:06d}",
        lang="zh" if zh else "en",
        title=title,
        description=description,
        category=category.slug,
        category_name=category.name[lang_index],
        brand=brand[lang_index],
        price_cents=price_cents,
        attributes={name: pair[lang_index] for name, pair in chosen.items()},
    )


def generate_queries(products: list[Product], seed: int = DEFAULT_SEED) -> list[Query]:
    """A search log over `products`: distinct queries with counts, most frequent first.

    Each product draws a popularity (heavy-tailed, like real shops where a few items get most
    searches) and that many searches; each search is one of the ways people look for it: a
    prefix of its title, its brand and product word, an attribute and the product word, the
    product word alone, or the category name. English queries are lower-cased, as typed.
    """
    rng = random.Random(seed + 1)
    counts: Counter[tuple[str, str, str]] = Counter()
    kinds: dict[tuple[str, str, str], str] = {}
    by_key = {category.slug: category for category in CATEGORIES}
    for product in products:
        searches = math.ceil(rng.paretovariate(1.6) * 2)
        category = by_key[product.category]
        for _ in range(searches):
            kind, text = _query_for(rng, product, category)
            key = (text, product.lang, product.category)
            counts[key] += 1
            kinds.setdefault(key, kind)
    queries = [
        Query(query=text, count=count, lang=lang, category=slug, kind=kinds[(text, lang, slug)])
        for (text, lang, slug), count in counts.items()
    ]
    queries.sort(key=lambda query: (-query.count, query.query, query.lang, query.category))
    return queries


def _query_for(rng: random.Random, product: Product, category: Category) -> tuple[str, str]:
    zh = product.lang == "zh"
    noun = _noun_of(product, category)
    kind = rng.choice(("prefix", "brand", "attribute", "noun", "category"))
    if kind == "prefix":
        words = product.title.replace(",", "").split()
        text = " ".join(words[: rng.randint(1, max(1, len(words) - 1))])
    elif kind == "brand":
        text = f"{product.brand} {noun}"
    elif kind == "attribute" and product.attributes:
        text = f"{rng.choice(list(product.attributes.values()))} {noun}"
    elif kind == "category":
        text = product.category_name
    else:
        kind, text = "noun", noun
    return kind, text if zh else text.lower()


def _noun_of(product: Product, category: Category) -> str:
    lang_index = 1 if product.lang == "zh" else 0
    nouns: list[Pair] = [noun for noun in category.nouns if noun[lang_index] in product.title]
    return nouns[0][lang_index] if nouns else category.name[lang_index]
