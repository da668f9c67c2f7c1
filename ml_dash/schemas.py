"""Generate the language-neutral JSON Schemas in ``schemas/`` from the pydantic models.

    python -m ml_dash.schemas            # rewrite schemas/
    python -m ml_dash.schemas --check    # exit 1 if a checked-in schema is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["generate", "main"]


def generate() -> dict[str, str]:
    """``{relative path below schemas/: JSON text}`` for every model we publish."""
    from ml_dash.records import RECORD_MODELS
    from ml_dash.records.dashrc import Dashrc

    out: dict[str, str] = {}
    for name, model in {**RECORD_MODELS, "dashrc": Dashrc}.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://ml-dash.dev/schemas/records/{name}.schema.json"
        out[f"records/{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    from ml_dash.config.commands import SPECS

    for name, spec in SPECS.items():
        schema = spec.model().model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://ml-dash.dev/schemas/config/{name}.schema.json"
        out[f"config/{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True, default=str) + "\n"
    out["api/openapi.json"] = json.dumps(_openapi(), indent=2, sort_keys=True) + "\n"
    return out


def _openapi() -> dict[str, object]:
    """The server's OpenAPI document (built on a throw-away embedded store)."""
    import tempfile

    from ml_dash.config.models import ServeConfig
    from ml_dash.server.app import create_app
    from ml_dash.server.state import ServerState

    with tempfile.TemporaryDirectory() as tmp:
        state = ServerState(ServeConfig(data_dir=Path(tmp), auth={"secret": "x"}))
        try:
            return create_app(state).openapi()
        finally:
            state.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_dash.schemas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", default="schemas", help="where the schemas live (default: ./schemas)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when anything is stale")
    args = parser.parse_args(argv)
    root = Path(args.directory)
    stale = []
    for rel, text in generate().items():
        path = root / rel
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(rel)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print(f"stale schemas in {root}: {', '.join(stale)} (regenerate: python -m ml_dash.schemas)", file=sys.stderr)
        return 1
    print(f"{len(stale)} schema file(s) {'stale' if args.check else 'written'} in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
