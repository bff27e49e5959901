"""Tensor codecs of the KServe v2 protocol: JSON data, binary data, gRPC contents <-> numpy.

Every decoder checks the element count against the shape and raises
:class:`InvalidRequestError` naming the tensor. BYTES tensors become numpy object arrays of
``bytes``; their binary form (the binary tensor data extension and gRPC raw contents) is each
element as a 4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from shoplm.serving.errors import InvalidRequestError

BYTES = "BYTES"

# Little-endian, as the protocol's binary encoding is.
NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMERIC_DTYPES, BYTES)

# The typed field of gRPC InferTensorContents for each datatype (FP16 travels raw only).
GRPC_CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}

_LENGTH = struct.Struct("<I")


def check_datatype(name: str, datatype: str) -> None:
    """400 unless ``datatype`` is one the protocol defines (and we decode)."""
    if datatype not in DATATYPES:
        raise InvalidRequestError(
            f"input '{name}': unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}", param=name
        )


def element_count(name: str, shape: Sequence[int]) -> int:
    """Elements a tensor of ``shape`` holds; 400 for a negative dimension."""
    if any(dim < 0 for dim in shape):
        raise InvalidRequestError(f"input '{name}': shape {list(shape)} has a negative dimension", param=name)
    return math.prod(shape)


def _count_mismatch(name: str, shape: Sequence[int], found: int | str, where: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"input '{name}': shape {list(shape)} needs {math.prod(shape)} elements but {where} holds {found}",
        param=name,
    )


def from_values(name: str, datatype: str, shape: Sequence[int], values: Sequence[Any]) -> np.ndarray:
    """A tensor from listed elements: JSON ``data`` (flat or nested, row-major) or gRPC typed contents.

    BYTES elements may be ``str`` (JSON, encoded as UTF-8) or ``bytes`` (gRPC ``bytes_contents``).
    """
    check_datatype(name, datatype)
    expected = element_count(name, shape)
    flat = _flatten(values)
    if len(flat) != expected:
        raise _count_mismatch(name, shape, len(flat), "its data")
    if datatype == BYTES:
        return bytes_array([_element_bytes(name, index, element) for index, element in enumerate(flat)]).reshape(
            shape
        )
    return _numeric_array(name, datatype, flat).reshape(shape)


def from_binary(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> np.ndarray:
    """A tensor from its binary form (binary tensor data extension, gRPC raw contents)."""
    check_datatype(name, datatype)
    expected = element_count(name, shape)
    if datatype == BYTES:
        return bytes_array(_split_bytes(name, shape, raw, expected)).reshape(shape)
    dtype = NUMERIC_DTYPES[datatype]
    if len(raw) != expected * dtype.itemsize:
        raise InvalidRequestError(
            f"input '{name}': shape {list(shape)} of {datatype} needs {expected * dtype.itemsize} bytes "
            f"but its binary data holds {len(raw)}",
            param=name,
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def to_binary(datatype: str, array: np.ndarray) -> bytes:
    """The binary form of an output tensor."""
    if datatype == BYTES:
        return b"".join(_LENGTH.pack(len(element)) + element for element in _as_bytes(array))
    return np.ascontiguousarray(array, dtype=NUMERIC_DTYPES[datatype]).tobytes()


def to_json_data(datatype: str, array: np.ndarray) -> list[Any]:
    """The flat, row-major ``data`` of an output tensor in a JSON body."""
    if datatype == BYTES:
        return [element.decode("utf-8", errors="replace") for element in _as_bytes(array)]
    return np.asarray(array, dtype=NUMERIC_DTYPES[datatype]).reshape(-1).tolist()


def _element_bytes(name: str, index: int, element: Any) -> bytes:
    if isinstance(element, bytes):
        return element
    if not isinstance(element, str):
        raise InvalidRequestError(
            f"input '{name}': BYTES element {index} must be a string, got {type(element).__name__}", param=name
        )
    try:
        return element.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry lone surrogates (an escaped D800), which are no UTF-8 text.
        raise InvalidRequestError(f"input '{name}': element {index} is not valid UTF-8", param=name) from None


def _as_bytes(array: np.ndarray) -> list[bytes]:
    return [element if isinstance(element, bytes) else str(element).encode("utf-8") for element in array.reshape(-1)]


def _split_bytes(name: str, shape: Sequence[int], raw: bytes, expected: int) -> list[bytes]:
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if len(elements) == expected:
            raise _count_mismatch(name, shape, f"more than {expected}", "its binary data")
        if offset + _LENGTH.size > len(raw):
            raise InvalidRequestError(
                f"input '{name}': binary BYTES data ends inside the 4-byte length of element {len(elements)}",
                param=name,
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidRequestError(
                f"input '{name}': BYTES element {len(elements)} declares {length} bytes "
                f"but only {len(raw) - offset} remain",
                param=name,
            )
        elements.append(raw[offset : offset + length])
        offset += length
    if len(elements) != expected:
        raise _count_mismatch(name, shape, len(elements), "its binary data")
    return elements


def _numeric_array(name: str, datatype: str, values: list[Any]) -> np.ndarray:
    dtype = NUMERIC_DTYPES[datatype]
    allowed: tuple[type, ...] = (bool,) if dtype.kind == "b" else (float, int) if dtype.kind == "f" else (int,)
    for index, value in enumerate(values):
        # bool is an int subclass: a flag is no number here, nor a number a flag.
        if not isinstance(value, allowed) or (isinstance(value, bool) and dtype.kind != "b"):
            raise InvalidRequestError(
                f"input '{name}': element {index} is a {type(value).__name__}, not a {datatype} value", param=name
            )
    try:
        return np.array(values, dtype=dtype)
    except OverflowError as error:
        raise InvalidRequestError(f"input '{name}': data does not fit {datatype}: {error}", param=name) from None


def bytes_array(elements: list[bytes]) -> np.ndarray:
    """A 1-D BYTES tensor: an object array of ``bytes``."""
    # np.array would turn a list of bytes into a fixed-width |S array and drop trailing NULs.
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array


def _flatten(values: Sequence[Any]) -> list[Any]:
    flat: list[Any] = []
    stack: list[Any] = [iter(values)]
    while stack:
        for element in stack[-1]:
            if isinstance(element, list):
                stack.append(iter(element))
                break
            flat.append(element)
        else:
            stack.pop()
    return flat
