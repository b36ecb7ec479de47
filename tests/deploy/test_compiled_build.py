"""setup.py's optional compiled core names only modules of the pure core, all present; without
RISKGATE_COMPILE it compiles nothing (the default install is pure Python)."""

from __future__ import annotations

from pathlib import Path

from bench.compiled import compiled_modules

ROOT = Path(__file__).resolve().parents[2]


def test_the_compiled_modules_are_the_pure_core_and_exist():
    modules = compiled_modules()
    assert modules and all(m.startswith("supervisor/core/") for m in modules)
    assert all((ROOT / m).is_file() for m in modules), modules
    assert "supervisor/core/evaluate.py" in modules


def test_the_default_build_compiles_nothing():
    text = (ROOT / "setup.py").read_text()
    assert 'os.environ.get("RISKGATE_COMPILE") == "1"' in text
    assert "ext_modules = []" in text
