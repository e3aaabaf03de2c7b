"""The hub process's caches of parsed releases and completed results stay bounded by what
they hold, and a query's parsed releases go once its result is built (issue #25: kept past
their queries, they were most of a 1,000-node hub's heap, walked by every full collection).

* `ParsedReleases`: a query's releases are found while it is open, gone after `forget`;
  over the bound the oldest other queries go first, and one query alone over it keeps
  its newest releases.
* `_CompletedResults`: bounded by node statuses and cells, not by results; the newest
  result is always kept, and a result read for another status or time is not served.
"""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from contracts.v1 import QueryResult, Release
from hub.queries.releases import ParsedReleases
from hub.queries.service import _CompletedResults


def _release(query_id: UUID, node_id: str) -> Release:
    return Release(
        query_id=query_id,
        node_id=node_id,
        agreement_id="a",
        agreement_version=1,
        dataset="d",
        contract_version=1,
        measure="count",
        group_by=(),
        mechanism="discrete_gaussian",
        rho=0.1,
        noise_scale=1.0,
        request_digest="0" * 64,
        cells=(),
        released_at=datetime.now(UTC),
    )


def test_parsed_releases_of_a_query_are_forgotten_once_it_completes() -> None:
    cache = ParsedReleases(size=100)
    one, two = uuid4(), uuid4()
    for node in ("n1", "n2"):
        cache.remember(str(one), node, _release(one, node))
    cache.remember(str(two), "n1", _release(two, "n1"))
    assert cache.peek(str(one), "n2") is not None
    cache.forget(str(one))
    assert cache.peek(str(one), "n1") is None
    assert cache.peek(str(one), "n2") is None
    assert cache.peek(str(two), "n1") is not None
    # Forgetting a query it never held changes nothing.
    cache.forget(str(uuid4()))
    assert cache.peek(str(two), "n1") is not None


def test_parsed_releases_evict_other_queries_first_then_the_oldest_of_one() -> None:
    cache = ParsedReleases(size=8)
    old, new = uuid4(), uuid4()
    for i in range(4):
        cache.remember(str(old), f"n{i}", _release(old, f"n{i}"))
    for i in range(12):
        cache.remember(str(new), f"n{i}", _release(new, f"n{i}"))
    assert all(cache.peek(str(old), f"n{i}") is None for i in range(4))
    held = [i for i in range(12) if cache.peek(str(new), f"n{i}") is not None]
    assert 0 < len(held) <= 8
    assert 11 in held  # the newest answer of the open query is always there
    assert held == list(range(held[0], 12))  # the oldest went first


def _result(nodes: int, at: datetime) -> QueryResult:
    fields: dict[str, Any] = {
        "query_id": uuid4(),
        "status": "complete",
        "nodes": tuple(range(nodes)),
        "cells": (),
        "completed_at": at,
    }
    return QueryResult.model_construct(**fields)


def test_completed_results_are_bounded_by_their_size_not_their_count() -> None:
    cache = _CompletedResults(size=100)
    at = datetime.now(UTC)
    cache.remember("small", _result(9, at))
    assert cache.peek("small", status="complete", at=at) is not None
    for i in range(3):
        cache.remember(f"big-{i}", _result(40, at))
    # 3 x 41 + 10 units > 100: the oldest went, the newest stays.
    assert cache.peek("small", status="complete", at=at) is None
    assert cache.peek("big-2", status="complete", at=at) is not None
    # One result over the whole bound is still kept (its waiter reads it next).
    cache.remember("huge", _result(500, at))
    assert cache.peek("huge", status="complete", at=at) is not None
    assert cache.peek("big-2", status="complete", at=at) is None
    # Only for the status and completion time it was built with.
    assert cache.peek("huge", status="running", at=at) is None
    assert cache.peek("huge", status="complete", at=None) is None
