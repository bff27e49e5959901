"""Duplicate removal: exact (hash of the normalized text) and near (MinHash LSH on character shingles)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from shoplm.data.rows import DropReason

if TYPE_CHECKING:
    from datasketch import MinHash
    from numpy.typing import NDArray

# 128 bits of the sha256 keep collisions out of reach while halving the index's memory.
_KEY_BYTES = 16
# Multiplier of the polynomial hash over code points (an odd 64-bit constant: the golden ratio).
_SHINGLE_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
# datasketch's own default seed, so the permutations are the library's documented ones.
_MINHASH_SEED = 1
_INDEX_THRESHOLD_FACTOR = 0.85
_BLOCK_ROWS = 4096
# Punctuation, symbols and spaces: left out of the shingles, so that texts that differ only in
# them ("推荐购买!" and "推荐购买!!!", commas for spaces) compare as the same words.
_NOT_WORD = re.compile(r"[\W_]+")


def text_digest(text: str) -> bytes:
    """sha256 of the UTF-8 text: the identity of a row for deduplication and for its split."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class ExactDeduplicator:
    """Remembers each normalized text with the label it first came with.

    A later row with the same text and a label already seen for it is an exact duplicate; with
    a new label, the text becomes conflicting: that row is dropped at once and the first one
    when the spooled rows are written (see `is_conflicting`). Memory: one 16-byte key and a
    reference per distinct text.
    """

    def __init__(self) -> None:
        self._first_label: dict[bytes, str | None] = {}
        self._conflicts: dict[bytes, set[str | None]] = {}

    def check(self, digest: bytes, label: str | None) -> DropReason | None:
        """None for a first occurrence (keep it for now), else why this row is dropped."""
        key = digest[:_KEY_BYTES]
        if key not in self._first_label:
            self._first_label[key] = label
            return None
        first = self._first_label[key]
        others = self._conflicts.get(key)
        if label == first or (others is not None and label in others):
            return DropReason.EXACT_DUPLICATE
        self._conflicts.setdefault(key, set()).add(label)
        return DropReason.CONFLICTING_LABEL

    def is_conflicting(self, digest: bytes) -> bool:
        """Whether the text was seen with more than one label."""
        return digest[:_KEY_BYTES] in self._conflicts


def fingerprint_text(text: str) -> str:
    """What near-duplicate detection compares: `text` case-folded, without punctuation, symbols
    and whitespace (the usual normalization of MinHash deduplication pipelines)."""
    return _NOT_WORD.sub("", text).casefold()


def shingle_hashes(text: str, size: int) -> NDArray[np.uint64]:
    """Distinct 32-bit hashes of the character `size`-grams of `text` (the whole text when shorter).

    Computed on the code points with numpy instead of hashing each shingle's bytes in Python,
    which made MinHash ten times slower.
    """
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    width = min(size, len(points))
    count = len(points) - width + 1
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(width):
        hashes = hashes * _SHINGLE_MULTIPLIER + points[offset : offset + count]
    # The high half mixes every code point of the shingle; datasketch's affine32 scheme wants 32 bits.
    return np.unique(hashes >> np.uint64(32))


class NearDuplicateFilter:
    """Keeps the first of each group of texts whose shingle sets have Jaccard similarity >= threshold.

    MinHash signatures (datasketch) are indexed by LSH banding: each band of a signature is a key,
    and texts that share a key with an earlier one are candidates, confirmed by the signatures'
    estimated similarity, so a chance band collision does not drop a row. Shingles are taken from
    :func:`fingerprint_text`, so punctuation and spacing do not count. Texts with fewer than
    `min_chars` characters left there are skipped (their few shingles make the estimate noisy;
    exact deduplication still applies to them).

    Memory: about 1.3 KiB per kept row at 128 permutations (the signature in a numpy block, one
    dict entry per band). datasketch's MinHashLSH took about 4.3 KiB: it keeps each band's bytes
    twice, and a set per key, so that keys can be removed, which deduplication never does
    (``benchmarks/dedup_bench.py`` compares the two).
    """

    def __init__(self, threshold: float, num_perm: int, shingle_size: int, min_chars: int) -> None:
        from datasketch import MinHash, MinHashLSH

        self._threshold = threshold
        self._shingle_size = shingle_size
        self._min_chars = min_chars
        self._template = MinHash(num_perm=num_perm, seed=_MINHASH_SEED, hashfunc=_identity)
        # LSH tuned to the threshold itself finds a pair just above it less than half the time
        # (at 0.9: 5 bands of 25 rows find a 0.91 pair with p = 0.39); banding for a lower
        # similarity finds nearly all of them, and the signature check keeps precision. datasketch
        # picks the bands for that similarity.
        bands = MinHashLSH(threshold=threshold * _INDEX_THRESHOLD_FACTOR, num_perm=num_perm)
        self._band_slices = [slice(band * bands.r, (band + 1) * bands.r) for band in range(bands.b)]
        # Band key -> the kept row (or rows) with that band. Python's hash of the band's bytes is
        # salted per process, which changes nothing: a key only proposes rows to compare.
        self._buckets: dict[int, int | list[int]] = {}
        # Kept signatures in blocks of _BLOCK_ROWS: growing never copies, and at most one block waits unused.
        self._blocks: list[NDArray[Any]] = []
        self._kept = 0

    def minhash(self, text: str) -> MinHash | None:
        """The MinHash of `text`'s fingerprint shingles; None for a text too short to compare."""
        words = fingerprint_text(text)
        if len(words) < self._min_chars:
            return None
        minhash = self._template.copy()
        minhash.update_batch(shingle_hashes(words, self._shingle_size).tolist())
        return minhash

    def is_duplicate(self, text: str) -> bool:
        """Whether `text` is a near duplicate of an earlier kept text; if not, it is remembered."""
        minhash = self.minhash(text)
        if minhash is None:
            return False
        signature = minhash.hashvalues
        keys = [hash((band, signature[part].tobytes())) for band, part in enumerate(self._band_slices)]
        checked: set[int] = set()
        for key in keys:
            entry = self._buckets.get(key)
            for row in (entry,) if isinstance(entry, int) else entry or ():
                if row not in checked:
                    checked.add(row)
                    kept = self._blocks[row // _BLOCK_ROWS][row % _BLOCK_ROWS]
                    if np.mean(kept == signature) >= self._threshold:
                        return True
        self._remember(keys, signature)
        return False

    def _remember(self, keys: list[int], signature: NDArray[Any]) -> None:
        row = self._kept
        if row % _BLOCK_ROWS == 0:
            self._blocks.append(np.empty((_BLOCK_ROWS, len(signature)), dtype=signature.dtype))
        self._blocks[-1][row % _BLOCK_ROWS] = signature
        self._kept += 1
        for key in keys:
            entry = self._buckets.setdefault(key, row)
            if entry is row:
                continue
            if isinstance(entry, int):
                self._buckets[key] = [entry, row]
            else:
                entry.append(row)


def _identity(value: int) -> int:
    # The shingles are hashed already (see shingle_hashes).
    return value
