"""The semantic cache's pure parts: which requests qualify, scopes, vector math, entries, the
in-process copy of a scope. Redis and the gateway around them: tests/integration."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import orjson
import pydantic
import pytest

from tiers.runtime import providers
from tiers.runtime.gateway import config, requests, semantic

USER = {"role": "user", "content": "What is the capital of France?"}
SYSTEM = {"role": "system", "content": "Answer in one word."}


def chat(messages: list[Any], **fields: object) -> requests.ModelRequest:
    body = {"model": "gpt-4o-mini", "messages": messages, **fields}
    return requests.parse("chat", orjson.dumps(body))


def completion(prompt: object, **fields: object) -> requests.ModelRequest:
    body = {"model": "gpt-4o-mini", "prompt": prompt, **fields}
    return requests.parse("completions", orjson.dumps(body))


def scope_of(request: requests.ModelRequest, *, tenant: str = "team-a", model: str = "e") -> str:
    prompt = semantic.single_turn(request)
    assert prompt is not None
    return semantic.scope_key("ns/chat", tenant, request.route, prompt.scope, embedding_model=model)


def unit(*values: float) -> np.ndarray:
    vector = semantic.normalize(values)
    assert vector is not None
    return vector


def entry(seq: int, *values: float, ref: str = "", at: float = 1000.0) -> semantic.Entry:
    return semantic.Entry(seq, at, ref or f"ref-{seq}", unit(*values))


def test_a_single_user_message_qualifies_with_its_text_out_of_the_scope() -> None:
    prompt = semantic.single_turn(chat([USER], temperature=0.2))
    assert prompt is not None
    assert prompt.text == USER["content"]
    assert prompt.scope["messages"] == [{"role": "user"}]
    assert prompt.scope["temperature"] == 0.2


def test_a_system_message_stays_whole_in_the_scope() -> None:
    prompt = semantic.single_turn(chat([SYSTEM, USER]))
    assert prompt is not None
    assert prompt.text == USER["content"]
    assert prompt.scope["messages"] == [SYSTEM, {"role": "user"}]


@pytest.mark.parametrize(
    "request_",
    [
        chat([USER, {"role": "assistant", "content": "Paris"}]),
        chat([USER, USER]),
        chat([{"role": "assistant", "content": "Hi"}, USER]),
        chat([SYSTEM, USER, {"role": "assistant", "content": "Paris"}, USER]),
        chat([SYSTEM]),
        chat([{"role": "user", "content": [{"type": "text", "text": "parts"}]}]),
        chat([{"role": "user", "content": ""}]),
        completion(["one", "two"]),
        completion(""),
        requests.parse("embeddings", b'{"model": "e", "input": "x"}'),
    ],
    ids=[
        "two-turns",
        "two-user-messages",
        "assistant-first",
        "long-chat",
        "no-user-message",
        "content-parts",
        "empty-content",
        "prompt-list",
        "empty-prompt",
        "embeddings",
    ],
)
def test_anything_but_a_single_turn_prompt_skips_the_semantic_cache(
    request_: requests.ModelRequest,
) -> None:
    assert semantic.single_turn(request_) is None


def test_a_single_string_completion_prompt_qualifies() -> None:
    prompt = semantic.single_turn(completion("Name the capital of France", max_tokens=5))
    assert prompt is not None
    assert prompt.text == "Name the capital of France"
    assert "prompt" not in prompt.scope and prompt.scope["max_tokens"] == 5


def test_prompts_that_differ_only_in_text_or_delivery_share_a_scope() -> None:
    base = scope_of(chat([USER], temperature=0.2))
    assert (
        scope_of(chat([{"role": "user", "content": "capital of france?"}], temperature=0.2)) == base
    )
    assert scope_of(chat([USER], temperature=0.2, stream=True)) == base


@pytest.mark.parametrize(
    ("request_", "tenant", "model"),
    [
        (chat([USER], temperature=1.0), "team-a", "e"),
        (chat([USER], temperature=0.2, max_tokens=5), "team-a", "e"),
        (chat([SYSTEM, USER], temperature=0.2), "team-a", "e"),
        (chat([USER], temperature=0.2, model="gpt-4o"), "team-a", "e"),
        (chat([USER], temperature=0.2), "team-b", "e"),
        (chat([USER], temperature=0.2), "team-a", "other-embedder"),
        (completion(USER["content"], temperature=0.2), "team-a", "e"),
    ],
    ids=["temperature", "max-tokens", "system", "model", "tenant", "embedding-model", "route"],
)
def test_anything_else_the_exact_key_covers_separates_scopes(
    request_: requests.ModelRequest, tenant: str, model: str
) -> None:
    assert scope_of(request_, tenant=tenant, model=model) != scope_of(chat([USER], temperature=0.2))


def test_both_keys_of_a_scope_share_one_cluster_hash_tag() -> None:
    key = scope_of(chat([USER]))
    tag = key[key.index("{") : key.index("}") + 1]
    assert (key + semantic.SEQ_SUFFIX).count(tag) == 1 and key.endswith(tag)


def test_normalize_gives_unit_float32_vectors_and_refuses_directionless_ones() -> None:
    vector = unit(3, 4)
    assert vector.dtype == np.float32
    assert vector.tolist() == pytest.approx([0.6, 0.8])
    assert semantic.normalize([0, 0]) is None
    assert semantic.normalize([math.nan, 1]) is None
    assert semantic.normalize([]) is None


def test_best_match_is_the_nearest_live_row() -> None:
    rows = np.stack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)])
    query = unit(1, 0.9, 0)
    assert semantic.best_match(rows, query, np.array([True, True, True])) == (
        1,
        pytest.approx(float(unit(1, 1, 0) @ query)),
    )
    assert semantic.best_match(rows, query, np.array([True, False, True])) == (
        0,
        pytest.approx(0.7433, abs=1e-3),
    )


def test_best_match_finds_nothing_without_live_rows_or_in_another_dimension() -> None:
    rows = np.stack([unit(1, 0, 0)])
    assert semantic.best_match(rows, unit(1, 0, 0), np.array([False])) is None
    assert semantic.best_match(rows, unit(1, 0), np.array([True])) is None
    empty = np.zeros((0, 0), np.float32)
    assert semantic.best_match(empty, unit(1, 0), np.zeros(0, bool)) is None


def test_a_prompt_compared_with_itself_passes_even_a_threshold_of_one() -> None:
    vector = unit(*np.random.default_rng(1).normal(size=1536))
    similarity = float(vector @ vector)
    assert semantic.is_close(similarity, 1.0)
    assert not semantic.is_close(0.94, 0.95)


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_an_embedding_reply_gives_a_unit_vector_and_its_usage(encoding: str) -> None:
    values = [3.0, 4.0]
    embedding: object = values
    if encoding == "base64":
        embedding = base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode()
    body = {"data": [{"embedding": embedding}], "usage": {"prompt_tokens": 7, "total_tokens": 7}}
    found = semantic.embedding_of(orjson.dumps(body))
    assert found is not None
    vector, usage = found
    assert vector.tolist() == pytest.approx([0.6, 0.8]) and usage.prompt_tokens == 7


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"data": []}',
        b'{"data": [{"embedding": [0, 0]}]}',
        b'{"data": [{"embedding": "!!"}]}',
    ],
)
def test_an_unusable_embedding_reply_is_none(body: bytes) -> None:
    assert semantic.embedding_of(body) is None


def test_an_entry_comes_back_as_the_add_script_stores_it() -> None:
    vector = unit(1, 2, 3)
    reference = "tiers:cache:ns/chat:team-a:chat:0123abcd"
    item = b"42:1700000000:" + semantic.pack_entry(reference, vector)
    found = semantic.unpack_item(item)
    assert found is not None
    assert (found.seq, found.stored_at, found.reference) == (42, 1700000000.0, reference)
    assert found.vector.tolist() == vector.tolist()


@pytest.mark.parametrize("item", [b"", b"x:1:", b"1:2:", b"1:2:\x05\x00abc", b"1:2:\x01\x00ab"])
def test_a_damaged_item_is_skipped(item: bytes) -> None:
    assert semantic.unpack_item(item) is None


def test_a_full_fetch_replaces_the_copy() -> None:
    index = semantic.ScopeIndex()
    index.apply([entry(3, 0, 1), entry(2, 1, 0)], latest=3, have=0, full=True, max_entries=10)
    assert (index.seq, index.references) == (3, ["ref-3", "ref-2"])
    index.apply([], latest=0, have=3, full=True, max_entries=10)
    assert (index.seq, index.references, index.vectors.shape[0]) == (0, [], 0)


def test_new_entries_go_on_top_and_the_oldest_fall_off() -> None:
    index = semantic.ScopeIndex()
    index.apply([entry(2, 0, 1), entry(1, 1, 0)], latest=2, have=0, full=True, max_entries=3)
    index.apply([entry(4, 1, 1), entry(3, 1, 2)], latest=4, have=2, full=False, max_entries=3)
    assert index.seq == 4
    assert index.references == ["ref-4", "ref-3", "ref-2"]
    assert index.vectors.shape == (3, 2) and index.stored_at.shape == (3,)


def test_a_concurrent_lookup_adds_only_what_the_copy_still_lacks() -> None:
    index = semantic.ScopeIndex()
    index.apply([entry(1, 1, 0)], latest=1, have=0, full=True, max_entries=10)
    # Two lookups started at seq 1; the first brought in 2 and 3, the second brings 2 again.
    index.apply([entry(3, 1, 1), entry(2, 0, 1)], latest=3, have=1, full=False, max_entries=10)
    index.apply([entry(2, 0, 1)], latest=2, have=1, full=False, max_entries=10)
    assert (index.seq, index.references) == (3, ["ref-3", "ref-2", "ref-1"])


def test_a_delta_computed_against_a_newer_copy_is_not_applied() -> None:
    index = semantic.ScopeIndex()
    index.apply([entry(9, 1, 0)], latest=9, have=5, full=False, max_entries=10)
    assert (index.seq, index.references) == (0, [])


def test_entries_of_another_dimension_replace_the_old_ones() -> None:
    index = semantic.ScopeIndex()
    index.apply([entry(1, 1, 0)], latest=1, have=0, full=True, max_entries=10)
    index.apply([entry(2, 1, 0, 0)], latest=2, have=1, full=False, max_entries=10)
    assert index.references == ["ref-2"] and index.vectors.shape == (1, 3)


def test_entries_older_than_the_ttl_are_not_found() -> None:
    index = semantic.ScopeIndex()
    index.apply(
        [entry(2, 1, 0, at=1000.0), entry(1, 1, 0.1, at=10.0)],
        latest=2,
        have=0,
        full=True,
        max_entries=10,
    )
    assert index.nearest(unit(1, 0.1), now=1050.0, ttl_seconds=100) == (
        "ref-2",
        pytest.approx(0.995, abs=1e-3),
    )
    assert index.nearest(unit(1, 0.1), now=1050.0, ttl_seconds=10_000) == (
        "ref-1",
        pytest.approx(1.0),
    )
    assert index.nearest(unit(1, 0), now=2000.0, ttl_seconds=100) is None


def test_embeddings_ask_each_backend_for_the_embedding_model() -> None:
    settings = config.GatewayConfig(
        backends=(
            providers.BackendConfig(name="a", provider="openai", model="gpt-4o-mini"),
            providers.BackendConfig(
                name="b",
                provider="azure-openai",
                model="gpt-4o-mini",
                deployment="chat",
                api_version="2024-10-21",
                base_url="https://x.openai.azure.com",
            ),
        )
    )
    embedders = semantic.embedding_settings(settings, "text-embedding-3-small").backends
    assert [(b.name, b.model, b.deployment) for b in embedders] == [
        ("a", "text-embedding-3-small", None),
        ("b", "text-embedding-3-small", "text-embedding-3-small"),
    ]
    assert embedders[1].api_version == "2024-10-21"


def test_the_semantic_cache_is_off_unless_asked_for() -> None:
    assert config.CacheConfig().semantic is None
    assert config.SemanticCacheConfig().enabled is False
    with pytest.raises(pydantic.ValidationError, match="threshold"):
        config.SemanticCacheConfig(threshold=95)
