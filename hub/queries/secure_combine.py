"""The hub's side of secure aggregation (pure; no I/O): which queries use it, how the
masked contributions of one attempt add up, and the cells of the sum. See docs/privacy.md.

The hub never sees a node's vector: it adds the members' masked vectors in Z / 2^64, where
the pairwise masks cancel, and reads the sum back as signed integers. Each of the k members
added discrete Gaussian noise of scale s, so the total noise variance is (at most) k s^2:
the central release's sigma^2 when k shares of sigma / sqrt(k) were added.
"""

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.accuracy import count_interval, share_estimate, share_interval, sum_interval
from contracts.agreement_rules import secure_refusal
from contracts.v1 import AgreementTerms, Component, QuerySpec, ResultCell, SecureContribution
from contracts.v1.release import SuppressionReason
from hub.queries.combine import judged

# Attempts of one query before the hub gives up (each one is charged at the nodes).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class SecurePlan:
    """How a query's nodes combine their noise, and why (shown with the result)."""

    secure: bool
    note: str | None = None


def plan_aggregation(*, terms: AgreementTerms, spec: QuerySpec, modes: Sequence[str]) -> SecurePlan:
    """Secure when the agreement allows it for this query and two or more push nodes take
    part; otherwise per-node noise, with the reason when the agreement asked for secure."""
    if terms.aggregation != "secure":
        return SecurePlan(secure=False)
    reason = secure_refusal(terms, spec)
    if reason is None and len(modes) < 2:
        reason = "secure aggregation needs two or more nodes; a single node adds the full noise"
    if reason is None and any(mode == "pull" for mode in modes):
        reason = (
            "secure aggregation needs every node online at once, and pull nodes answer on"
            " their own schedule"
        )
    if reason is not None:
        return SecurePlan(secure=False, note=f"per-node noise: {reason}")
    return SecurePlan(secure=True)


def fallback_query_id(query_id: uuid.UUID) -> uuid.UUID:
    """The id under which the last node of a secure query that lost its peers is asked for a
    plain release: a node binds each query id to one mode, and the secure id is spent."""
    return uuid.uuid5(query_id, "per-node-fallback")


class AggregateInvalid(Exception):
    """Contributions that cannot be one attempt's sum; the attempt is discarded."""


@dataclass(frozen=True)
class Aggregate:
    """The unmasked sum of one attempt: noisy integer totals per component, and their noise."""

    measure: str
    keys: tuple[tuple[str, ...], ...]
    inner: int
    center: float
    totals: dict[str, np.ndarray]
    granularity: dict[str, float]
    variance: dict[str, float]
    members: tuple[str, ...]
    # The union of the members' value bounds (sum), so the sum's interval respects them.
    bounds: tuple[float, float] | None = None


def vector(text: str) -> np.ndarray:
    """A masked vector off the wire (little-endian uint64, base64url)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise AggregateInvalid("a vector is not base64url") from exc
    if len(raw) % 8:
        raise AggregateInvalid("a vector is not a whole number of 64-bit integers")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def unmasked_sum(vectors: Sequence[np.ndarray] | Sequence[Sequence[int]]) -> np.ndarray:
    """The sum of masked vectors in Z / 2^64, read back as signed integers."""
    total = np.zeros(len(vectors[0]) if vectors else 0, dtype=np.uint64)
    for values in vectors:
        total += np.asarray(values, dtype=np.uint64)
    return total.view(np.int64)


def aggregate(contributions: Sequence[SecureContribution]) -> Aggregate:
    """Add one attempt's contributions, after checking they describe the same sum."""
    if not contributions:
        raise AggregateInvalid("no contributions")
    first = contributions[0]
    members = tuple(sorted(c.node_id for c in contributions))
    for c in contributions:
        if tuple(sorted(c.members)) != members:
            raise AggregateInvalid("a contribution was masked for another roster")
        same = (c.query_id, c.attempt, c.roster_digest, c.measure, c.keys, c.inner, c.center)
        if same != (
            first.query_id,
            first.attempt,
            first.roster_digest,
            first.measure,
            first.keys,
            first.inner,
            first.center,
        ):
            raise AggregateInvalid("contributions disagree on the query, roster or cells")
        shapes = [(m.name, len(m.values), m.granularity, m.adders) for m in c.components]
        if shapes != [(m.name, len(m.values), m.granularity, m.adders) for m in first.components]:
            raise AggregateInvalid("contributions disagree on their vectors")
    size = len(first.keys) * first.inner
    totals: dict[str, np.ndarray] = {}
    granularity: dict[str, float] = {}
    variance: dict[str, float] = {}
    for i, component in enumerate(first.components):
        vectors = [vector(c.components[i].values) for c in contributions]
        if any(len(v) != size for v in vectors):
            raise AggregateInvalid("a vector does not match the cells")
        shares = [c.components[i].share_scale for c in contributions]
        if sum(1 for scale in shares if scale > 0) != component.adders:
            raise AggregateInvalid("fewer members added noise than the plan says")
        totals[component.name] = unmasked_sum(vectors)
        granularity[component.name] = component.granularity
        variance[component.name] = sum(c.components[i].share_scale ** 2 for c in contributions)
    return Aggregate(
        measure=first.measure,
        keys=first.keys,
        inner=first.inner,
        center=first.center,
        totals=totals,
        granularity=granularity,
        variance=variance,
        members=members,
        bounds=(
            (min(c.low for c in contributions), max(c.high for c in contributions))
            if first.measure == "sum"
            else None
        ),
    )


def contribution_guarantee(contribution: SecureContribution) -> dict[str, Any]:
    """The privacy guarantee a member signed with its contribution, as `NodeStatus` fields:
    its rho and (epsilon, delta), and its own share of the noise on each component."""
    components = tuple(
        Component(
            name=c.name,
            mechanism="discrete_gaussian",
            scale=c.share_scale,
            sensitivity=c.sensitivity,
            rho=c.rho,
        )
        for c in contribution.components
    )
    return {
        "rho": contribution.rho,
        "epsilon": contribution.epsilon,
        "delta": contribution.delta,
        "mechanism": "discrete_gaussian",
        "noise_scale": components[0].scale,
        "components": components,
    }


def secure_cells(
    agg: Aggregate, *, min_cell_size: int, max_ci_relative_width: float | None
) -> tuple[ResultCell, ...]:
    """The result's cells from the aggregate, judged by the agreement's suppression rules
    (there are no node cells to withhold: nodes released nothing on their own)."""
    counts = agg.totals["count"].astype(np.float64)
    count_variance = agg.variance["count"]
    cells = []
    for i, key in enumerate(agg.keys):
        if agg.measure == "share":
            numerator, other = float(counts[2 * i]), float(counts[2 * i + 1])
            size = numerator + other
            if size < max(min_cell_size, 1):
                cells.append(_suppressed(key, "below_min_cell_size", agg.members))
                continue
            estimate = share_estimate(numerator, size)
            low, high = share_interval(numerator, size, count_variance)
        elif agg.measure == "sum":
            step = agg.granularity["sum"]
            size = float(counts[i])
            total = step * float(agg.totals["sum"][i]) + agg.center * size
            variance = step**2 * agg.variance["sum"] + agg.center**2 * count_variance
            estimate, low, high = sum_interval(total, variance, bounds=agg.bounds)
        else:
            estimate = size = float(counts[i])
            low, high = count_interval(estimate, count_variance)
        cells.append(
            judged(
                key=key,
                estimate=estimate,
                low=low,
                high=high,
                size=size,
                nodes=agg.members,
                min_cell_size=min_cell_size,
                max_ci_relative_width=max_ci_relative_width,
            )
        )
    return tuple(cells)


def _suppressed(
    key: tuple[str, ...], reason: SuppressionReason, members: tuple[str, ...]
) -> ResultCell:
    return ResultCell(key=key, status="suppressed", reason=reason, nodes=members)
