import json
from pathlib import Path

from contracts.schema import EXPORTED
from sauti.json_schemas import write_json_schemas


def test_every_wire_model_exports_a_closed_json_schema(tmp_path: Path) -> None:
    written = write_json_schemas(tmp_path)
    assert len(written) == len(EXPORTED)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["type"] == "object"
        # extra="forbid" must survive into the schema so other implementations refuse unknowns.
        assert schema.get("additionalProperties") is False, path.name
