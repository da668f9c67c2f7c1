from __future__ import annotations

from pathlib import Path

from ml_dash.schemas import generate, main

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    for rel, text in generate().items():
        path = SCHEMAS / rel
        assert path.exists(), f"schemas/{rel} is missing: run python -m ml_dash.schemas"
        assert path.read_text() == text, f"schemas/{rel} is stale: run python -m ml_dash.schemas"


def test_check_mode_fails_on_a_stale_schema(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    victim = next(tmp_path.rglob("*.schema.json"))
    victim.write_text("{}")
    assert main([str(tmp_path), "--check"]) == 1
    assert main([str(tmp_path)]) == 0 and main([str(tmp_path), "--check"]) == 0
