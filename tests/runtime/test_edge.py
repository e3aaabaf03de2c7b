"""runtime.edge: the text rule, document policies, data-free log lines, OpenAPI errors."""

import base64
import hashlib
import logging
from typing import Any

import pytest

from contracts.v1 import ErrorResponse
from runtime import edge
from runtime.edge.logs import _AccessWithoutQuery, _TaskFailureWithoutText


@pytest.mark.parametrize("bad", ["\x00", "\x01", "\x1b", "\x7f", "\x85", chr(0xD800), chr(0xDFFF)])
def test_control_characters_nul_and_lone_surrogates_are_refused_everywhere(bad: str) -> None:
    assert edge.forbidden_in({"purpose": f"a{bad}b"}) == [("body", "purpose")]
    assert edge.forbidden_in_form([("notes", f"a{bad}b")]) == [("body", "notes")]


def test_tab_and_newlines_are_text_in_values_but_not_in_keys() -> None:
    assert edge.forbidden_in({"purpose": "line one\n\tline two\r\n"}) == []
    assert edge.forbidden_in({"a\tb": 1}) == [("body", "a\\tb")]
    assert edge.forbidden_in_form([("x\ny", "v")]) == [("body", "x\\ny")]
    assert edge.forbidden_in(["ok", {"deep": ["x", "y\x00"]}]) == [("body", 1, "deep", 1)]
    assert edge.forbidden_in({"name": "Tiếng Việt नेपाली বাংলা ✓"}) == []


def test_findings_are_bounded() -> None:
    assert len(edge.forbidden_in(["\x00"] * 1000)) == 10


def test_validation_errors_never_echo_the_input() -> None:
    (error,) = edge.validation_errors([("body", "username")])
    assert error["type"] == "control_character"
    assert error["input"] is None


def test_a_document_policy_allows_exactly_its_own_style_blocks() -> None:
    html = "<html><style>body { color: red; }</style><p style='x'>hi</p></html>"
    digest = base64.b64encode(hashlib.sha256(b"body { color: red; }").digest()).decode()
    policy = edge.document_policy(html)
    assert f"style-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe" not in policy
    assert "style-src 'none'" in edge.document_policy("<p>no styles</p>")


def _record(msg: str, args: Any = None, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_log_lines_carry_the_exception_type_never_its_text_or_traceback() -> None:
    try:
        raise ValueError("SELECT secret FROM users WHERE name = 'canary'")
    except ValueError as exc:
        record = _record("Exception in ASGI application\nmore lines", exc=exc)
    text = edge.DataFreeFormatter().format(record)
    assert "ValueError" in text
    assert "canary" not in text
    assert "SELECT" not in text
    assert "Traceback" not in text
    assert "more lines" not in text
    assert "\n" not in text


def test_access_lines_lose_their_query_and_task_failures_their_repr() -> None:
    access = _record('%s - "%s %s HTTP/%s" %d', ("1.2.3.4", "GET", "/x?who=canary", "1.1", 200))
    _AccessWithoutQuery().filter(access)
    assert "canary" not in access.getMessage()
    assert "/x" in access.getMessage()
    try:
        raise RuntimeError("INSERT canary")
    except RuntimeError as exc:
        failure = _record("Task %(name)s failed: %(exc)s", exc=exc)
    failure.args = {"name": "deliver", "exc": "RuntimeError('INSERT canary')"}
    _TaskFailureWithoutText().filter(failure)
    assert failure.getMessage() == "Task deliver failed: RuntimeError"


def test_openapi_errors_are_added_once_with_the_error_schema() -> None:
    document: dict[str, Any] = {
        "paths": {
            "/v1/things/{thing_id}": {
                "post": {
                    "security": [{"HTTPBearer": []}],
                    "parameters": [{"name": "thing_id", "in": "path"}],
                    "requestBody": {"content": {"application/json": {}}},
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {}}, "text/csv": {}}},
                        "422": {"content": {"application/json": {"schema": {"$ref": "x"}}}},
                    },
                }
            }
        },
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }
    built = edge.with_errors(lambda: document, error_schema=ErrorResponse.model_json_schema())
    built()
    schema = built()
    responses = schema["paths"]["/v1/things/{thing_id}"]["post"]["responses"]
    assert set(responses) == {"200", "401", "403", "404", "413", "422", "4XX", "500"}
    assert set(responses["200"]["content"]) == {"text/csv"}
    ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ErrorResponse"
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message"]
