"""The serving image's build context holds every Airloop module its serving code imports."""

from __future__ import annotations

import ast
from pathlib import Path

from airloop.deploy.image import prepare_context


def _airloop_imports(path: Path) -> set[str]:
    """The `airloop...` modules a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "airloop":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "airloop")
    return found


def test_every_airloop_module_the_serving_code_imports_is_in_the_image(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    app = prepare_context(model, tmp_path / "context", wheels=None) / "app"
    shipped = {p.relative_to(app).with_suffix("").as_posix().replace("/", ".") for p in app.rglob("*.py")}
    shipped |= {name.removesuffix(".__init__") for name in shipped}
    imported = set().union(*(_airloop_imports(p) for p in app.rglob("*.py")))
    assert "airloop.tasks" in imported  # what serving needs from outside its package
    assert imported <= shipped, f"imported by serving code but not in the image: {sorted(imported - shipped)}"
    assert (app / "model" / "MLmodel").is_file()
