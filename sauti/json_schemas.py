"""Write the v1 wire models' JSON Schemas to a folder: `python -m sauti.json_schemas DIR`."""

import json
import sys
from pathlib import Path

from contracts.schema import json_schemas


def write_json_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_json_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
