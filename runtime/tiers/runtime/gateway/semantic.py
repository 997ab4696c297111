"""The optional semantic cache: a single-turn prompt close enough to an earlier one gets its answer.

`calls.ModelCalls.handle` asks it on an exact-cache miss. Only single-turn prompts qualify (see
`single_turn`): a chat of one user message, optionally after one system (or developer) message,
or a text completion of one string prompt. The prompt's text is embedded through the endpoint's
own backends (the embeddings route, with retries, fallback and circuit breakers like any call),
and compared by cosine with the prompts stored in the same *scope*: the tenant, the route and
everything the exact-match key covers except the prompt text (model, sampling parameters, the
system message, tools...), so an answer given at temperature 0.2 never serves a request at 1.0.
At or above the threshold the stored prompt's response is served; otherwise the call goes
upstream as usual and, on a 200, the new (vector, response) joins the scope.

Storage is plain Redis (no modules), so every replica shares one index:

    tiers:semantic:<endpoint>:<tenant>:<route>:{<scope digest>}       list, newest first
    tiers:semantic:<endpoint>:<tenant>:<route>:{<scope digest>}:seq   entries ever added

Each list item is `<seq>:<stored at, Redis unix seconds>:` then the packed entry (`pack_entry`):
the unit float32 vector and a *reference*, the exact-cache key of the response. The response itself
stays in the exact cache (one copy, one TTL); a reference whose response has expired is a miss.
A list holds at most `max_entries` items (the oldest are trimmed), and both keys expire `ttl`
after the last addition; an item older than `ttl` is skipped in the search.

Each replica keeps an in-process matrix per scope and brings it up to date on each lookup with
one script call, which returns only the items added since the replica's last sequence number
(nothing at all when it is current), and searches it by brute force. Redis errors bypass the
semantic cache; a failed embedding call does too: neither ever fails the request.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import decimal
import hashlib
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from tiers.runtime import pricing, providers
from tiers.runtime.gateway import (
    availability,
    cache,
    config,
    errors,
    metrics,
    rediswire,
    requests,
    upstream,
)
from tiers.runtime.providers import failures

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]

HIT = "semantic-hit"
INSTRUCTION_ROLES = frozenset({"system", "developer"})
SEQ_SUFFIX = ":seq"
LOCAL_SCOPES = 64
"""Scopes whose matrix a replica keeps in memory; the least recently used one goes first."""
TOLERANCE = 1e-6
"""float32 rounding: a prompt compared with itself scores 0.9999999, which must pass 1.0."""

# KEYS: the list, the sequence counter. ARGV: the packed entry, max entries, ttl in seconds.
# A counter created afresh starts at Redis's clock in microseconds, so a scope that expired and
# came back never reuses a sequence number that a replica still holds.
ADD = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
end
local seq = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')[1]
redis.call('LPUSH', KEYS[1], string.format('%d', seq) .. ':' .. now .. ':' .. ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return seq
"""

# KEYS: the list, the sequence counter. ARGV: the caller's sequence number (0: none), max entries.
# Returns {latest sequence number, 1 if the items are the whole list, Redis unix seconds, items}.
# Items are pushed one at a time with consecutive numbers, so the newest `latest - have` are
# exactly those the caller lacks.
FETCH = """
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
local have = tonumber(ARGV[1])
local most = tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local missing = latest - have
if have == 0 or missing < 0 or missing >= most then
  return {latest, 1, now, redis.call('LRANGE', KEYS[1], 0, most - 1)}
end
if missing == 0 then
  return {latest, 0, now, {}}
end
return {latest, 0, now, redis.call('LRANGE', KEYS[1], 0, missing - 1)}
"""
ADD_SCRIPT, FETCH_SCRIPT = rediswire.Script(ADD), rediswire.Script(FETCH)


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A qualifying request's text to embed, and what else it asked (the scope)."""

    text: str
    scope: dict[str, Any]


def single_turn(request: requests.ModelRequest) -> Prompt | None:
    """The prompt of a single-turn request, or None for any other request.

    A system message stays in the scope, whole, rather than in the embedded text: two prompts
    under different instructions never share an answer, however alike their user messages are.
    """
    material = request.cache_material()
    if request.route == "completions":
        prompt = material.pop("prompt", None)
        return Prompt(prompt, material) if isinstance(prompt, str) and prompt else None
    if request.route != "chat":
        return None
    messages = material.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 2:
        return None
    *instructions, question = messages
    if any(m.get("role") not in INSTRUCTION_ROLES for m in instructions):
        return None
    text = question.get("content")
    if question.get("role") != "user" or not isinstance(text, str) or not text:
        return None
    unasked = {name: value for name, value in question.items() if name != "content"}
    return Prompt(text, {**material, "messages": [*instructions, unasked]})


def scope_key(
    endpoint: str, tenant: str, route: str, scope: dict[str, Any], *, embedding_model: str
) -> str:
    """The Redis key of a scope's list. The embedding model is part of the scope: vectors of two
    models are not comparable. The digest is a hash tag, so a cluster keeps both keys together."""
    material = orjson.dumps([scope, embedding_model], option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(material, digest_size=20).hexdigest()
    return f"tiers:semantic:{endpoint}:{tenant}:{route}:{{{digest}}}"


def normalize(values: npt.ArrayLike) -> Vector | None:
    """The unit float32 vector along `values`, or None where it has no direction (zero, NaN)."""
    vector = np.asarray(values, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    if vector.size == 0 or not np.isfinite(norm) or norm == 0.0:
        return None
    return (vector / norm).astype(np.float32)


def best_match(
    vectors: Vector, query: Vector, live: npt.NDArray[np.bool_]
) -> tuple[int, float] | None:
    """The row of `vectors` (unit rows) nearest to the unit `query` by cosine, among `live` rows,
    with its similarity; None when no row is live or the dimensions differ."""
    if vectors.ndim != 2 or vectors.shape[1] != query.shape[0] or not live.any():
        return None
    scores = np.where(live, vectors @ query, -np.inf)
    row = int(np.argmax(scores))
    return row, float(scores[row])


def is_close(similarity: float, threshold: float) -> bool:
    return similarity >= threshold - TOLERANCE


def embedding_of(body: bytes) -> tuple[Vector, pricing.Usage] | None:
    """The unit vector and usage of an embeddings response (float list or base64 float32)."""
    try:
        reply = orjson.loads(body)
        raw = reply["data"][0]["embedding"]
        usage = reply.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        values: npt.ArrayLike = (
            np.frombuffer(base64.b64decode(raw), dtype="<f4") if isinstance(raw, str) else raw
        )
        vector = normalize(values)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    return None if vector is None else (vector, pricing.Usage(prompt_tokens=tokens))


def pack_entry(reference: str, vector: Vector) -> bytes:
    ref = reference.encode()
    return struct.pack("<H", len(ref)) + ref + vector.astype("<f4").tobytes()


@dataclasses.dataclass(frozen=True)
class Entry:
    seq: int
    stored_at: float
    reference: str
    vector: Vector


def unpack_item(item: bytes) -> Entry | None:
    """One list item as the ADD script stored it, or None where it is not one."""
    try:
        seq, stored_at, packed = item.split(b":", 2)
        (length,) = struct.unpack_from("<H", packed)
        reference = packed[2 : 2 + length].decode()
        floats = packed[2 + length :]
        if len(floats) % 4 or not floats:
            return None
        vector = np.frombuffer(floats, dtype="<f4").astype(np.float32)
        return Entry(int(seq), float(stored_at), reference, vector)
    except (ValueError, struct.error, UnicodeDecodeError):
        return None


class ScopeIndex:
    """The in-process copy of one scope: unit vectors as matrix rows, newest first."""

    def __init__(self) -> None:
        self.seq = 0
        self.vectors: Vector = np.zeros((0, 0), dtype=np.float32)
        self.stored_at: npt.NDArray[np.float64] = np.zeros(0)
        self.references: list[str] = []

    def apply(
        self, entries: Sequence[Entry], *, latest: int, have: int, full: bool, max_entries: int
    ) -> None:
        """Takes in what FETCH returned for a lookup that started at sequence number `have`.

        Lookups of one scope run concurrently: one that finds the copy already past `have`
        adds only what is still new to it, and one that finds it behind `have` (the copy was
        replaced meanwhile) leaves it for the next lookup to fetch in full.
        """
        if full:
            self._keep(entries, max_entries=max_entries, older=False)
            self.seq = latest
        elif self.seq >= have:
            fresh = [e for e in entries if e.seq > self.seq]
            self._keep(fresh, max_entries=max_entries, older=True)
            self.seq = max(self.seq, latest)

    def _keep(self, entries: Sequence[Entry], *, max_entries: int, older: bool) -> None:
        """Makes `entries` (newest first) the newest rows, above the current rows if `older`."""
        if not entries and older:
            return
        # Vectors of another length (a model that changed its dimensions) cannot be compared.
        size = entries[0].vector.shape[0] if entries else 0
        rows = [e for e in entries if e.vector.shape[0] == size][:max_entries]
        vectors = np.stack([e.vector for e in rows]) if rows else np.zeros((0, 0), np.float32)
        stored_at = np.array([e.stored_at for e in rows], dtype=np.float64)
        references = [e.reference for e in rows]
        if older and self.vectors.shape[1:] == vectors.shape[1:]:
            vectors = np.concatenate([vectors, self.vectors])[:max_entries]
            stored_at = np.concatenate([stored_at, self.stored_at])[:max_entries]
            references = [*references, *self.references][:max_entries]
        self.vectors, self.stored_at, self.references = vectors, stored_at, references

    def nearest(self, query: Vector, *, now: float, ttl_seconds: int) -> tuple[str, float] | None:
        found = best_match(self.vectors, query, self.stored_at > now - ttl_seconds)
        return None if found is None else (self.references[found[0]], found[1])


class SharedIndex:
    """The scopes' entries in Redis, and this replica's copy of each scope, kept current."""

    def __init__(
        self, redis_client: rediswire.Client, *, max_entries: int, ttl_seconds: int
    ) -> None:
        self._redis = redis_client
        self._max = max_entries
        self._ttl = ttl_seconds
        self._scopes: collections.OrderedDict[str, ScopeIndex] = collections.OrderedDict()

    async def add(self, scope: str, reference: str, vector: Vector) -> None:
        """Stores one entry; this replica, like the others, sees it at its next lookup."""
        entry = pack_entry(reference, vector)
        keys = [scope, scope + SEQ_SUFFIX]
        await self._redis.run(ADD_SCRIPT, keys, [entry, self._max, self._ttl])

    async def nearest(self, scope: str, query: Vector) -> tuple[str, float] | None:
        """The reference of the live entry nearest to `query`, and its cosine similarity."""
        index = self._scopes.get(scope)
        if index is None:
            index = self._scopes[scope] = ScopeIndex()
            while len(self._scopes) > LOCAL_SCOPES:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(scope)
        have = index.seq
        keys = [scope, scope + SEQ_SUFFIX]
        latest, full, now, items = await self._redis.run(FETCH_SCRIPT, keys, [have, self._max])
        entries = [e for e in map(unpack_item, items) if e is not None]
        index.apply(entries, latest=int(latest), have=have, full=bool(full), max_entries=self._max)
        return index.nearest(query, now=float(now), ttl_seconds=self._ttl)


@dataclasses.dataclass(frozen=True)
class Probe:
    """A semantic lookup: the response found (None on a miss) and what the embedding cost."""

    scope: str
    reference: str
    vector: Vector
    usage: pricing.Usage
    cost: decimal.Decimal
    response: bytes | None


class EmbeddingFailed(Exception):
    """The backends gave no usable embedding: the semantic cache is skipped for the request."""


def embedding_settings(settings: config.GatewayConfig, model: str) -> config.GatewayConfig:
    """The endpoint's backends, asked for `model` (on Azure OpenAI, the deployment) instead of
    the chat model: a backend pinned to its chat model would rename the embeddings request."""

    def embedder(backend: providers.BackendConfig) -> providers.BackendConfig:
        update: dict[str, Any] = {"model": model}
        if backend.provider == "azure-openai":
            update["deployment"] = model
        return backend.model_copy(update=update)

    return settings.model_copy(update={"backends": tuple(map(embedder, settings.backends))})


def build(
    settings: config.GatewayConfig,
    responses: cache.ResponseCache,
    redis_client: rediswire.Client | None,
    redis_availability: availability.Availability,
    *,
    backends: Callable[[config.GatewayConfig], upstream.Backends],
) -> SemanticCache | None:
    """The semantic cache the settings ask for, or None: it is off by default, and needs the
    exact cache (which holds the responses) and Redis (which holds the vectors)."""
    wanted = settings.cache.semantic
    if wanted is None or not wanted.enabled:
        return None
    if not settings.cache.enabled or redis_client is None:
        log.warning("the semantic cache needs the response cache and Redis; it stays off")
        return None
    return SemanticCache(
        wanted,
        endpoint=settings.endpoint,
        ttl_seconds=settings.cache.ttl_seconds,
        price=pricing.price_for(wanted.embedding_model, settings.price_overrides()),
        embedder=backends(embedding_settings(settings, wanted.embedding_model)),
        responses=responses,
        redis_client=redis_client,
        redis_availability=redis_availability,
    )


class SemanticCache:
    def __init__(
        self,
        settings: config.SemanticCacheConfig,
        *,
        endpoint: str,
        ttl_seconds: int,
        price: pricing.Price,
        embedder: upstream.Backends,
        responses: cache.ResponseCache,
        redis_client: rediswire.Client,
        redis_availability: availability.Availability,
    ) -> None:
        self._settings = settings
        self._endpoint = endpoint
        self._price = price
        self._embedder = embedder
        self._responses = responses
        self._index = SharedIndex(
            redis_client, max_entries=settings.max_entries, ttl_seconds=ttl_seconds
        )
        self._redis_availability = redis_availability
        self._embeddings = availability.Availability("semantic cache embeddings", configured=True)
        self._writes: set[asyncio.Task[None]] = set()

    async def probe(
        self, request: requests.ModelRequest, tenant: str, reference: str
    ) -> Probe | None:
        """Looks the request up; None where it does not qualify or could not be embedded.

        `reference` is the request's exact-cache key: where its response will be, once fetched.
        """
        prompt = single_turn(request)
        if prompt is None:
            return None
        embedded = await self._embed(prompt.text)
        if embedded is None:
            metrics.semantic_lookups("error").inc()
            return None
        vector, usage = embedded
        scope = scope_key(
            self._endpoint,
            tenant,
            request.route,
            prompt.scope,
            embedding_model=self._settings.embedding_model,
        )
        probe = Probe(scope, reference, vector, usage, pricing.cost(usage, self._price), None)
        try:
            found = await self._index.nearest(scope, vector)
        except rediswire.Error as error:
            self._redis_availability.failed(error, "serving without the semantic cache")
            metrics.semantic_lookups("bypass").inc()
            return probe
        self._redis_availability.succeeded()
        response = None
        if found is not None and is_close(found[1], self._settings.threshold):
            response, _ = await self._responses.get(found[0])
        metrics.semantic_lookups("miss" if response is None else "hit").inc()
        return dataclasses.replace(probe, response=response)

    def settle(
        self, probe: Probe, *, status: int, usage: pricing.Usage, cost: decimal.Decimal
    ) -> tuple[pricing.Usage, decimal.Decimal]:
        """After a miss went upstream: remembers the prompt if the call succeeded, and returns
        the call's usage and cost with the embedding's added."""
        if status == 200:
            task = asyncio.get_running_loop().create_task(self._remember(probe))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        total = pricing.Usage(
            prompt_tokens=usage.prompt_tokens + probe.usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )
        return total, cost + probe.cost

    async def _embed(self, text: str) -> tuple[Vector, pricing.Usage] | None:
        model = self._settings.embedding_model
        request = requests.ModelRequest(
            route="embeddings",
            body={"model": model, "input": text, "encoding_format": "base64"},
            model=model,
            stream=False,
            include_usage=False,
            max_output_tokens=0,
        )
        try:
            reply = await self._embedder.complete(request)
        except errors.GatewayError as error:
            self._embedding_failed(error.message)
            return None
        metrics.UPSTREAM_ATTEMPTS.inc(reply.attempts)
        embedded = embedding_of(reply.body) if reply.status == 200 else None
        if embedded is None:
            self._embedding_failed(
                f"{reply.backend}: {failures.error_message(reply.status, reply.body)}"
            )
            return None
        self._embeddings.succeeded()
        return embedded

    def _embedding_failed(self, detail: str) -> None:
        # Logged once per outage, with the first reason, not once per request.
        self._embeddings.failed(EmbeddingFailed(detail), f"{detail}; bypassing the semantic cache")

    async def _remember(self, probe: Probe) -> None:
        try:
            await self._index.add(probe.scope, probe.reference, probe.vector)
        except rediswire.Error as error:
            self._redis_availability.failed(error, "serving without the semantic cache")
