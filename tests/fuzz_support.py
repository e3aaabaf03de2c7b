"""Schema-driven fuzzing of an app's OpenAPI document (schemathesis), in process.

Every operation of the document gets `EXAMPLES` generated requests, valid and invalid by
the schema's own definition (schemathesis' positive and negative modes), sent through the
app with httpx (Starlette's TestClient would warn, and warnings are errors), as a caller
holding `headers` (a strong credential, so requests reach past the authentication). Each
answer must not be a server error. Deterministic (`derandomize`), so CI never flakes, and
bounded: the number of examples per operation is fixed.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = 6


@dataclass
class FuzzReport:
    calls: int = 0
    server_errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def _request_kwargs(case: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url="http://app.test")
    out: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params"),
    }
    if kwargs.get("cookies"):
        # As a header: httpx deprecates per-request cookies (and warnings are errors).
        cookie = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
        out["headers"] = {**out["headers"], "cookie": cookie}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    elif "data" in kwargs:
        data = kwargs["data"]
        if isinstance(data, bytes | str):
            out["content"] = data
        else:
            out["data"] = data
    if kwargs.get("files"):
        out["files"] = kwargs["files"]
    return out


def fuzz(
    document: dict[str, Any],
    send: Callable[..., httpx.Response],
    *,
    headers: dict[str, str],
    skip: Iterable[tuple[str, str]] = (),
    examples: int = EXAMPLES,
) -> FuzzReport:
    """Fuzz every operation of `document` (but `skip`: (METHOD, path) pairs) through `send`."""
    schema = schemathesis.openapi.from_dict(document)
    skipped = {(m.upper(), p) for m, p in skip}
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if (operation.method.upper(), operation.path) in skipped:
            continue
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )
        _run(strategy, label, send, headers, report, examples)
    return report


def _run(
    strategy: st.SearchStrategy[Any],
    label: str,
    send: Callable[..., httpx.Response],
    headers: dict[str, str],
    report: FuzzReport,
    examples: int,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        kwargs = _request_kwargs(case)
        kwargs["headers"] = {**kwargs["headers"], **headers}
        try:
            response = send(**kwargs)
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
            reject()  # not even sendable over HTTP (e.g. a newline in a header)
        report.calls += 1
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            report.server_errors.append(f"{label} -> {response.status_code}")

    run()
