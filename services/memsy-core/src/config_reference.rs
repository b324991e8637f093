//! The configuration reference (docs/configuration.md), generated from the
//! doc comments and defaults of [`Config`] so that the page cannot drift from
//! the code: a test compares the checked-in page with [`markdown`].

use schemars::schema::{InstanceType, RootSchema, Schema, SchemaObject, SingleOrVec};
use serde_json::Value;

use crate::Config;

/// One documented key: what an operator sets and what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// `section.key`, as in the TOML file.
    pub path: String,
    pub env: String,
    pub kind: String,
    pub default: Option<String>,
    pub description: String,
}

/// One `[section]` of the file and its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: String,
    pub description: String,
    pub keys: Vec<Key>,
}

/// Every section and key of the configuration, in declaration order.
pub fn sections() -> Vec<Section> {
    let root = schemars::schema_for!(Config);
    let mut out = Vec::new();
    for (name, field) in properties(&root.schema) {
        let target = resolve(&root, field);
        let description = description(field_schema(field)).or_else(|| description(target)).unwrap_or_default();
        let (mut keys, mut nested) = (Vec::new(), Vec::new());
        collect(&root, target, name, &mut keys, &mut nested);
        // Sections opened by maps inside this one (`usage.plans.<name>`) follow it.
        out.push(Section { name: name.clone(), description, keys });
        out.append(&mut nested);
    }
    out
}

fn collect(root: &RootSchema, object: &SchemaObject, prefix: &str, keys: &mut Vec<Key>, out: &mut Vec<Section>) {
    for (name, field) in properties(object) {
        let path = format!("{prefix}.{name}");
        let target = resolve(root, field);
        // A map of structs (plans) is documented as a section of its own.
        if let Some(values) = map_values(target) {
            let value = resolve(root, values);
            if !properties(value).is_empty() {
                let mut nested = Vec::new();
                let section = format!("{path}.<name>");
                collect(root, value, &section, &mut nested, out);
                out.push(Section { name: section, description: description(value).unwrap_or_default(), keys: nested });
            }
        }
        keys.push(Key {
            env: format!("MEMSY__{}", path.replace('.', "__").to_uppercase()),
            kind: kind(root, field),
            default: field_schema(field).metadata.as_ref().and_then(|m| m.default.as_ref()).map(show_default),
            description: description(field_schema(field)).or_else(|| description(target)).unwrap_or_default(),
            path,
        });
    }
}

fn field_schema(schema: &Schema) -> &SchemaObject {
    match schema {
        Schema::Object(o) => o,
        Schema::Bool(_) => unreachable!("the config has no boolean schemas"),
    }
}

fn properties(object: &SchemaObject) -> Vec<(&String, &Schema)> {
    object.object.as_ref().map(|o| o.properties.iter().collect()).unwrap_or_default()
}

fn map_values(object: &SchemaObject) -> Option<&Schema> {
    object.object.as_ref().and_then(|o| o.additional_properties.as_deref())
}

/// Follows `$ref`s and the `allOf: [$ref]` that schemars writes for a
/// documented field of struct type.
fn resolve<'a>(root: &'a RootSchema, schema: &'a Schema) -> &'a SchemaObject {
    let mut object = field_schema(schema);
    loop {
        if let Some(r) = &object.reference {
            let name = r.trim_start_matches("#/definitions/");
            object = field_schema(&root.definitions[name]);
        } else if let Some([only]) = object.subschemas.as_ref().and_then(|s| s.all_of.as_deref()) {
            object = field_schema(only);
        } else {
            return object;
        }
    }
}

fn description(schema: &SchemaObject) -> Option<String> {
    let text = schema.metadata.as_ref()?.description.as_ref()?;
    // Doc comments are wrapped for the source; a table cell wants one line.
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A short type name: `string`, `integer`, `onnx \| local \| remote`, …
fn kind(root: &RootSchema, field: &Schema) -> String {
    let object = resolve(root, field);
    if let Some(values) = &object.enum_values {
        return values.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join(" \\| ");
    }
    if let Some(values) = map_values(object) {
        let value = resolve(root, values);
        let inner = if properties(value).is_empty() { kind(root, values) } else { "table".to_string() };
        return format!("map of {inner}");
    }
    let types: Vec<InstanceType> = match &object.instance_type {
        Some(SingleOrVec::Single(t)) => vec![**t],
        Some(SingleOrVec::Vec(ts)) => ts.clone(),
        None => Vec::new(),
    };
    let optional = types.contains(&InstanceType::Null);
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != InstanceType::Null)
        .map(|t| match t {
            InstanceType::Boolean => "boolean",
            InstanceType::Integer => "integer",
            InstanceType::Number => "number",
            InstanceType::String => "string",
            InstanceType::Array => "array",
            InstanceType::Object => "table",
            InstanceType::Null => "null",
        })
        .collect();
    let name = names.join(" or ");
    if optional {
        format!("{name}, optional")
    } else {
        name
    }
}

fn show_default(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_string(),
        Value::Object(map) if map.is_empty() => "empty".to_string(),
        // f32 settings arrive widened to f64 (0.93 → 0.9300000071525574).
        Value::Number(n) if n.is_f64() => format!("`{}`", n.as_f64().unwrap_or_default() as f32),
        other => format!("`{}`", canonical(other)),
    }
}

/// JSON with object keys sorted: serde_json keeps insertion order when
/// another crate of the build turns on its `preserve_order`, which would
/// make the page depend on what else is compiled.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// docs/configuration.md.
pub fn markdown() -> String {
    let mut page = String::from(
        "# Configuration\n\n\
         <!-- Generated from the doc comments in services/memsy-core/src/config.rs by \
         `MEMSY_WRITE_DOCS=1 cargo test -p memsy-core --test configuration_reference`; edit those, not this page. -->\n\n\
         Every memsy process reads the same configuration, in layers: the built-in defaults below, then a TOML \
         file (`--config FILE` or `MEMSY_CONFIG`), then environment variables `MEMSY__SECTION__KEY` (double \
         underscores; for example `MEMSY__NATS__URL`). `QDRANT_URL` and `QDRANT_API_KEY` are read as well. A \
         value of the wrong type or an unknown engine name stops the process at start-up with the key's name. \
         Keys holding secrets (`*api_key`) are never printed; set them through the environment.\n",
    );
    for section in sections() {
        page.push_str(&format!("\n## `[{}]`\n\n", section.name));
        if !section.description.is_empty() {
            page.push_str(&section.description);
            page.push_str("\n\n");
        }
        page.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for key in &section.keys {
            let name = key.path.rsplit('.').next().unwrap_or(&key.path);
            let default = key.default.clone().unwrap_or_else(|| "—".to_string());
            page.push_str(&format!(
                "| `{name}`<br>`{}` | {} | {} | {} |\n",
                key.env,
                key.kind,
                default.replace('|', "\\|"),
                key.description.replace('|', "\\|")
            ));
        }
    }
    page
}
