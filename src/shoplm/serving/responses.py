"""A JSON response for large numeric payloads (embeddings, tensors).

Python's json module formats floats one by one; an embedding response spends most of its
event-loop time there. orjson writes numpy arrays directly, over twenty times faster.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson; numpy arrays may appear anywhere in the content."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
