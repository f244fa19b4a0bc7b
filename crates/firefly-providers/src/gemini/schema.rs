//! JSON Schemas as Gemini's `Schema` (an OpenAPI 3.0 subset) accepts them.
//!
//! Gemini refuses a request whose function parameters or response schema hold a key its
//! `Schema` message does not have ("Invalid JSON payload received. Unknown name …"), so a
//! schema is rebuilt from the keys Gemini documents and everything else is dropped:
//!
//! - kept: `type`, `format`, `title`, `description`, `nullable`, `enum`, `properties`,
//!   `required`, `items`, `anyOf`, `minItems`, `maxItems`, `minProperties`,
//!   `maxProperties`, `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`,
//!   `default`, `example`, `propertyOrdering`;
//! - rewritten: `type: [T, "null"]` → `type: T, nullable: true`; `oneOf` → `anyOf` (a
//!   looser constraint, but the same choices); `const: v` → `enum: [v]`;
//! - dropped: everything else, notably `$schema`, `$id`, `$comment`, `$ref`, `$defs`,
//!   `definitions`, `additionalProperties`, `patternProperties`, `unevaluatedProperties`,
//!   `allOf`, `not`, `if`/`then`/`else`, `examples`, `exclusiveMinimum`,
//!   `exclusiveMaximum`, `multipleOf`, `uniqueItems`, `strict`. A schema using `$ref`
//!   loses the referenced constraints (the reference becomes an unconstrained value).

use serde_json::{Map, Value};

use crate::transcode::TranscodeError;

/// Deeper schemas are refused rather than walked: no real tool needs this many levels.
const MAX_DEPTH: usize = 48;

const KEPT: &[&str] = &[
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "required",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "default",
    "example",
    "propertyOrdering",
];

/// `schema` (a JSON object) with only what Gemini accepts; `param` names it in errors.
pub(crate) fn clean_schema(schema: &Value, param: &str) -> Result<Value, TranscodeError> {
    clean(schema, 0).ok_or_else(|| {
        TranscodeError::invalid(format!("`{param}` is nested more than {MAX_DEPTH} levels deep"), Some(param))
    })
}

/// `None` when too deep.
fn clean(schema: &Value, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    // `true`, `false` and other non-objects say nothing Gemini can use.
    let Some(schema) = schema.as_object() else { return Some(Value::Object(Map::new())) };
    let mut out = Map::new();
    match schema.get("type") {
        Some(Value::String(kind)) => {
            out.insert("type".to_owned(), Value::String(kind.clone()));
        }
        Some(Value::Array(kinds)) => {
            let mut named = kinds.iter().filter_map(Value::as_str).filter(|k| *k != "null");
            if kinds.iter().any(|k| k.as_str() == Some("null")) {
                out.insert("nullable".to_owned(), Value::Bool(true));
            }
            // Several non-null types cannot be said with one `type`: leave it open.
            if let (Some(kind), None) = (named.next(), named.next()) {
                out.insert("type".to_owned(), Value::String(kind.to_owned()));
            }
        }
        _ => {}
    }
    for key in KEPT {
        if let Some(value) = schema.get(*key) {
            out.entry(*key).or_insert_with(|| value.clone());
        }
    }
    if !out.contains_key("enum") {
        if let Some(value) = schema.get("const") {
            out.insert("enum".to_owned(), Value::Array(vec![value.clone()]));
        }
    }
    if let Some(Value::Object(properties)) = schema.get("properties") {
        let mut cleaned = Map::new();
        for (name, property) in properties {
            cleaned.insert(name.clone(), clean(property, depth + 1)?);
        }
        out.insert("properties".to_owned(), Value::Object(cleaned));
    }
    if let Some(items @ Value::Object(_)) = schema.get("items") {
        out.insert("items".to_owned(), clean(items, depth + 1)?);
    }
    if let Some(Value::Array(choices)) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
        let cleaned = choices.iter().map(|c| clean(c, depth + 1)).collect::<Option<Vec<_>>>()?;
        out.insert("anyOf".to_owned(), Value::Array(cleaned));
    }
    Some(Value::Object(out))
}
