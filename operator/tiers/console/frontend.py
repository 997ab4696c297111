"""The built frontend (`frontend/dist`, Vite's output), served beside the API.

Vite names the files under `assets/` by their content's hash, so they are cached for a year as
immutable; `index.html` and the other files are revalidated on every load (`no-cache`), so a new
build is seen at once. Any other path that is not a file is the single-page app's route: it gets
`index.html`. Without a build, every page is one that says how to build it (the API still works).
"""

from __future__ import annotations

import html
import pathlib

import fastapi
from fastapi import responses

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tiers console</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>The Tiers console's frontend is not built</h1>
<p>The console's API is running, but there is no built page in <code>{where}</code>.</p>
<p>Build it with <code>npm ci &amp;&amp; npm run build</code> in <code>frontend/</code>
(or <code>make demo</code>, which builds it), then reload this page.</p>
<p>The API: <a href="/api/v1/resources">/api/v1/resources</a>.</p>
</body></html>
"""


def mount(app: fastapi.FastAPI, dist: pathlib.Path) -> None:
    root = dist.resolve()

    @app.get("/{path:path}", include_in_schema=False)
    async def page(path: str) -> fastapi.Response:
        if path.startswith("api/"):
            raise fastapi.HTTPException(404, f"no API route /{path}")
        index = root / "index.html"
        if not index.is_file():
            return responses.HTMLResponse(
                NOT_BUILT.format(where=html.escape(str(root))),
                status_code=503,
                headers={"cache-control": "no-store"},
            )
        found = (root / path).resolve()
        if path and found.is_file() and found.is_relative_to(root):
            immutable = found.is_relative_to(root / "assets")
            return responses.FileResponse(
                found, headers={"cache-control": IMMUTABLE if immutable else REVALIDATE}
            )
        return responses.FileResponse(index, headers={"cache-control": REVALIDATE})
