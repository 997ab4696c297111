"""The console's ASGI app: the API routers, errors as JSON, gzip, and the frontend last (its
catch-all route answers every path the API does not). `create_app` is what the server and the
tests run; the series recorder runs in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import fastapi
from starlette.middleware import gzip

from tiers.console import (
    batch,
    errors,
    frontend,
    identity,
    limits,
    realtime,
    recorder,
    resources,
    series,
    state,
    stream,
)


def create_app(settings: state.Settings, identities: identity.Identities) -> limits.Limits:
    console = state.Console(settings=settings, identities=identities, rings=series.Rings())

    @contextlib.asynccontextmanager
    async def lifespan(_: fastapi.FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(
            recorder.record(
                identities.console,
                console.rings,
                namespaces=settings.namespaces,
                path=settings.series_file,
            )
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = fastapi.FastAPI(
        title="Tiers console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.console = console
    errors.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in (resources.router, realtime.router, stream.router, batch.router):
        app.include_router(router)
    frontend.mount(app, settings.frontend_dir)
    app.add_middleware(gzip.GZipMiddleware, minimum_size=1024)
    return limits.Limits(app, max_upload_bytes=settings.max_upload_bytes)
