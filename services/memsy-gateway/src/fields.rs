//! Reading request bodies field by field, so that every rejection names
//! the exact field (`events[3].ts`) instead of a generic parse error.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::ApiError;

/// Reads at most `limit` bytes of body; more is a 413.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(format!("request body is larger than the limit of {limit} bytes")));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let source = e.into_inner();
        if source.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            ApiError::too_large(format!("request body is larger than the limit of {limit} bytes"))
        } else {
            // The client went away or sent a broken body: not a size problem.
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("could not read the request body: {source}"))
        }
    })
}

/// Reads at most `limit` bytes of body (413 past it) as a JSON object (422 otherwise).
pub async fn read_object(headers: &HeaderMap, body: Body, limit: usize) -> Result<Map<String, Value>, ApiError> {
    json_object(&read_body(headers, body, limit).await?)
}

/// The body as a JSON object; anything else is a 422 on `body`.
pub fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => {
            for (k, v) in &m {
                refuse_nul(v, k)?;
            }
            Ok(m)
        }
        Ok(_) => Err(ApiError::invalid("body", "must be a JSON object")),
        Err(e) => Err(ApiError::invalid("body", format!("is not valid JSON ({e})"))),
    }
}

/// A NUL in any string or key of a body is refused, naming where it is: no
/// field of ours means anything with one, and stores and logs mangle it.
fn refuse_nul(v: &Value, path: &str) -> Result<(), ApiError> {
    let nul = |s: &str| s.contains('\0');
    if nul(path) {
        return Err(ApiError::invalid(path.replace('\0', "\\0"), "must not contain a NUL character"));
    }
    match v {
        Value::String(s) if nul(s) => Err(ApiError::invalid(path, "must not contain a NUL character")),
        Value::Array(a) => a.iter().enumerate().try_for_each(|(i, x)| refuse_nul(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| refuse_nul(x, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

/// A tenant may not choose its org: the key decides.
pub fn reject_org_id(obj: &Map<String, Value>) -> Result<(), ApiError> {
    if obj.contains_key("org_id") {
        return Err(ApiError::org_id_not_allowed());
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field that may be absent or null.
pub fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(ApiError::invalid(path, format!("must be a string, not {}", type_name(other)))),
    }
}

/// A required, non-empty string field.
pub fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, ApiError> {
    match opt_str(obj, key, path)? {
        None => Err(ApiError::invalid(path, "is required")),
        Some("") => Err(ApiError::invalid(path, "must not be empty")),
        Some(s) => Ok(s),
    }
}

/// A text field: absent/null → None; otherwise a string, trimmed, not
/// empty, at most `max` characters, on one line.
pub fn opt_text(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    // A name is shown and logged: a NUL or another control character in it is a mistake.
    text_field(obj, key, max, char::is_control, "must not contain control characters (NUL, newlines, ...)")
}

/// Like [`opt_text`] for prose such as a promotion prompt: line breaks and
/// tabs are kept (generated prompts have them); other control characters are refused.
pub fn opt_prose(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    text_field(
        obj,
        key,
        max,
        |c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'),
        "must not contain control characters other than line breaks and tabs",
    )
}

fn text_field(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    refused: fn(char) -> bool,
    why: &str,
) -> Result<Option<String>, ApiError> {
    let Some(raw) = opt_str(obj, key, key)? else { return Ok(None) };
    let t = raw.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(key, "must not be empty"));
    }
    if t.chars().any(refused) {
        return Err(ApiError::invalid(key, why));
    }
    let n = t.chars().count();
    if n > max {
        return Err(ApiError::invalid(key, format!("is {n} characters long; at most {max} are allowed")));
    }
    Ok(Some(t.to_string()))
}

/// An id: non-empty, at most `max` characters.
pub fn check_id_len(s: &str, path: &str, max: usize) -> Result<(), ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid(path, "must not be empty"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(ApiError::invalid(path, format!("is {n} characters long; at most {max} are allowed")));
    }
    Ok(())
}

/// An id a search filters by: also limited to `[A-Za-z0-9_\-:.@/]`.
pub fn check_searchable_id(s: &str, path: &str, max: usize) -> Result<(), ApiError> {
    check_id_len(s, path, max)?;
    if !memsy_core::ids::is_searchable_id(s) {
        return Err(ApiError::invalid(path, "may only contain letters, digits and _ - : . @ /"));
    }
    Ok(())
}

pub fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(key, format!("must be a boolean, not {}", type_name(other)))),
    }
}

pub fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| ApiError::invalid(key, "must be a finite number")),
        Some(other) => Err(ApiError::invalid(key, format!("must be a number, not {}", type_name(other)))),
    }
}

pub fn opt_int(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            // 10.0 is an integer as far as a JSON client is concerned.
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
                _ => Err(ApiError::invalid(key, "must be an integer")),
            },
        },
        Some(other) => Err(ApiError::invalid(key, format!("must be an integer, not {}", type_name(other)))),
    }
}

/// An optional list of strings.
pub fn opt_str_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => {
                    Err(ApiError::invalid(format!("{key}[{i}]"), format!("must be a string, not {}", type_name(other))))
                }
            })
            .collect(),
        Some(other) => Err(ApiError::invalid(key, format!("must be an array of strings, not {}", type_name(other)))),
    }
}

pub fn type_of(v: &Value) -> &'static str {
    type_name(v)
}

/// Query-string parameters of a GET, read field by field like bodies are.
/// As an extractor, a query string that cannot be decoded is a 400 in the
/// API's error shape.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(q) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("malformed query string: {e}"))
        })?;
        Ok(Params(q))
    }
}

impl Params {
    /// A parameter; an empty value counts as absent.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// An integer parameter within `min..=max`, `default` when absent.
    pub fn int_in(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let Some(raw) = self.str(key) else { return Ok(default) };
        let n: i64 =
            raw.trim().parse().map_err(|_| ApiError::invalid(key, format!("must be an integer, got '{raw}'")))?;
        if !(min..=max).contains(&n) {
            return Err(ApiError::invalid(key, format!("must be between {min} and {max}, got {n}")));
        }
        Ok(n)
    }

    /// `limit` (1..=max) and `offset` (≥ 0) of a paged list.
    pub fn page(&self, default_limit: i64, max_limit: i64) -> Result<(usize, usize), ApiError> {
        let limit = self.int_in("limit", default_limit, 1, max_limit)?;
        let offset = self.int_in("offset", 0, 0, i64::MAX)?;
        Ok((limit as usize, offset as usize))
    }

    /// One of `allowed`, `default` when absent.
    pub fn choice<'a>(&'a self, key: &str, default: &'a str, allowed: &[&str]) -> Result<&'a str, ApiError> {
        let v = self.str(key).unwrap_or(default);
        if !allowed.contains(&v) {
            return Err(ApiError::invalid(key, format!("'{v}' is not one of {}", allowed.join(", "))));
        }
        Ok(v)
    }
}

/// The `limit` items from `offset` on.
pub fn page_of<T>(items: Vec<T>, offset: usize, limit: usize) -> Vec<T> {
    items.into_iter().skip(offset).take(limit).collect()
}

/// One page of `items` (every match, filtered and sorted) in the envelope the
/// SDK's list responses read: `{items, total, limit, offset, truncated}`.
pub fn page_envelope<T>(
    items: Vec<T>,
    (limit, offset): (usize, usize),
    truncated: bool,
    render: impl Fn(&T) -> Value,
) -> Json<Value> {
    let total = items.len();
    let items: Vec<Value> = page_of(items, offset, limit).iter().map(render).collect();
    Json(json!({ "items": items, "total": total, "limit": limit, "offset": offset, "truncated": truncated }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_anywhere_in_a_body_is_refused_naming_the_field() {
        let e = json_object(br#"{"events":[{"content":"a\u0000b"}]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.extra["field"], "events[0].content");
        let e = json_object(br#"{"metadata":{"k\u0000":"v"}}"#).unwrap_err();
        assert_eq!(e.extra["field"], "metadata.k\\0");
        assert!(json_object(br#"{"events":[{"content":"a b"}]}"#).is_ok());
    }

    #[test]
    fn control_characters_in_a_name_are_refused() {
        let obj = json_object(br#"{"name":"k\tx"}"#).unwrap();
        assert_eq!(opt_text(&obj, "name", 10).unwrap_err().extra["field"], "name");
    }
}
