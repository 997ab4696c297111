"""The model routes every caller speaks, and where each goes on a provider's API.

The gateway maps its own paths (`/v1/chat/completions`...) onto a route; the model client is
configured with one. `backends.Backend.url` appends the route's upstream path to a backend's base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Route = Literal["chat", "completions", "embeddings"]

UPSTREAM_PATHS: Mapping[Route, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
