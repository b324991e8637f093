"""The values table of helm/memsy/README.md, made from values.schema.json
(keys, types, descriptions) and values.yaml (defaults), so that the README
cannot drift from what Helm enforces. test_readme.py checks the README
holds exactly this table; after changing the schema or the defaults:

    .venv/bin/python tests/helm/values_table.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "memsy"
README = CHART_DIR / "README.md"
START = "<!-- values-table:start (tests/helm/values_table.py --write) -->"
END = "<!-- values-table:end -->"


def load_schema() -> dict:
    return json.loads((CHART_DIR / "values.schema.json").read_text())


def resolve(node: dict, schema: dict) -> dict:
    """The node with its $ref followed; its own description wins."""
    if "$ref" not in node:
        return node
    name = node["$ref"].removeprefix("#/definitions/")
    target = dict(resolve(schema["definitions"][name], schema))
    if "description" in node:
        target["description"] = node["description"]
    return target


def type_of(node: dict, schema: dict) -> str:
    if "enum" in node:
        return " or ".join(json.dumps(v) for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(type_of(resolve(n, schema), schema) for n in node["oneOf"])
    t = node.get("type", "any")
    if t == "object" and isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
        return f"map of {type_of(resolve(node['additionalProperties'], schema), schema)}"
    if t == "object" and isinstance(node.get("additionalProperties"), dict):
        return "object"
    if t == "array":
        return f"list of {type_of(resolve(node.get('items', {}), schema), schema)}"
    return " or ".join(t) if isinstance(t, list) else t


def leaves(schema: dict) -> list[tuple[str, dict]]:
    """(dotted key, resolved node) for every value the schema types: objects
    with declared properties are walked into, anything else is a leaf."""
    out = []

    def walk(node: dict, path: str):
        node = resolve(node, schema)
        if node.get("type") == "object" and "properties" in node:
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}" if path else key)
        else:
            out.append((path, node))

    walk(schema, "")
    return out


def default_of(values: dict, path: str):
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None, False
        node = node[part]
    return node, True


def cell(text: str) -> str:
    # Markdown would take <name> for an HTML tag and | for a column.
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def table() -> str:
    schema = load_schema()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for path, node in leaves(schema):
        value, present = default_of(values, path)
        default = f"`{json.dumps(value, separators=(', ', ': '))}`" if present else "unset"
        rows.append(f"| `{path}` | {cell(type_of(node, schema))} | {cell(default)} | {cell(node.get('description', ''))} |")
    return "\n".join(rows)


def readme_table(text: str) -> str:
    """The table as the README holds it, between the markers."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip()


def write() -> None:
    text = README.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    README.write_text(text[:start] + "\n" + table() + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(table())
