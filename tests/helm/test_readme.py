"""helm/memsy/README.md documents every value: its table is the one
values_table.py makes from values.schema.json and values.yaml, and every
value values.yaml sets has a row."""

from __future__ import annotations

import yaml

import values_table as vt


def flatten(values: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in values.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out |= flatten(v, path)
        else:
            out.add(path)
    return out


def test_readme_table_is_the_schema_s():
    readme = vt.README.read_text()
    assert vt.readme_table(readme) == vt.table(), "run: .venv/bin/python tests/helm/values_table.py --write"


def test_every_default_value_has_a_row():
    rows = {path for path, _ in vt.leaves(vt.load_schema())}
    defaults = flatten(yaml.safe_load((vt.CHART_DIR / "values.yaml").read_text()))
    # A default lies at a row, inside one (a row of type object or map holds
    # its keys), or is an empty object whose keys have rows (config: {}).
    undocumented = [d for d in defaults
                    if not any(d == r or d.startswith(r + ".") or r.startswith(d + ".") for r in rows)]
    assert undocumented == []


def test_every_row_is_typed_and_described():
    for path, node in vt.leaves(vt.load_schema()):
        assert vt.type_of(node, vt.load_schema()) != "any", path
        assert node.get("description"), path


def test_the_table_follows_the_schema():
    # A key the schema drops, or a type it changes, shows in the table.
    schema = vt.load_schema()
    rows = dict(vt.leaves(schema))
    assert vt.type_of(rows["config.embedder.engine"], schema) == '"onnx" or "local" or "remote"'
    assert vt.type_of(rows["gateway.pdb.maxUnavailable"], schema) == "integer or string"
    assert vt.type_of(rows["config.usage.plans"], schema) == "map of object"
    table = vt.table()
    assert "| `gateway.replicas` | integer | `2` |" in table
    assert "| `config.llm.url` | string | unset |" in table
