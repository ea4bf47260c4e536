//! Stripe's request encoding: `application/x-www-form-urlencoded` with
//! bracket nesting (`metadata[k]=v`, `expand[]=a`, `items[0][price]=p`,
//! `items[][price]=p`) parsed into a `serde_json::Value` tree whose leaves are
//! strings, plus typed accessors that answer with Stripe's error object.
//!
//! Why not serde_qs: it is not in the workspace lock file, it wants a target
//! type per endpoint (we keep objects as JSON), and repeated `expand[]` /
//! Rack-style `a[][k]` arrays need exactly the rules written out below.

use serde_json::{Map, Value};

use crate::error::ApiError;

enum Seg {
    Key(String),
    Push,
}

fn split_key(key: &str) -> Result<(String, Vec<Seg>), String> {
    let (base, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if base.is_empty() {
        return Err(format!("Invalid parameter name: {key}"));
    }
    let mut segs = Vec::new();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.find(']').map(|end| (&r[..end], &r[end + 1..])));
        match inner {
            Some(("", tail)) => {
                segs.push(Seg::Push);
                rest = tail;
            }
            Some((k, tail)) if !k.contains('[') => {
                segs.push(Seg::Key(k.to_string()));
                rest = tail;
            }
            _ => return Err(format!("Invalid parameter name: {key}")),
        }
    }
    Ok((base.to_string(), segs))
}

fn conflict(key: &str) -> String {
    format!("Invalid parameter: {key} is given both as a value and as a nested object or array")
}

fn insert(
    node: &mut Map<String, Value>,
    key: &str,
    rest: &[Seg],
    v: String,
    full: &str,
) -> Result<(), String> {
    match rest.split_first() {
        None => {
            if matches!(node.get(key), Some(Value::Object(_) | Value::Array(_))) {
                return Err(conflict(full));
            }
            node.insert(key.to_string(), Value::String(v));
            Ok(())
        }
        Some((Seg::Key(k), tail)) => {
            let child = node
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match child {
                Value::Object(m) => insert(m, k, tail, v, full),
                _ => Err(conflict(full)),
            }
        }
        Some((Seg::Push, tail)) => {
            let child = node
                .entry(key.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = child else {
                return Err(conflict(full));
            };
            match tail.split_first() {
                None => {
                    items.push(Value::String(v));
                    Ok(())
                }
                // Rack's rule for `a[][k]`: start a new element when the
                // last one already has `k` (or is not an object).
                Some((Seg::Key(k), tail2)) => {
                    let start_new = match items.last() {
                        Some(Value::Object(m)) => m.contains_key(k),
                        _ => true,
                    };
                    if start_new {
                        items.push(Value::Object(Map::new()));
                    }
                    match items.last_mut() {
                        Some(Value::Object(m)) => insert(m, k, tail2, v, full),
                        _ => Err(conflict(full)),
                    }
                }
                Some((Seg::Push, _)) => Err(format!("Invalid parameter name: {full}")),
            }
        }
    }
}

/// `{"0": a, "1": b}` → `[a, b]` (from `a[0][k]=`), except inside metadata
/// where numeric keys are just keys.
fn normalise(v: Value, parent: &str) -> Value {
    match v {
        Value::Object(m) => {
            let numeric = parent != "metadata"
                && !m.is_empty()
                && m.keys().all(|k| k.parse::<usize>().is_ok());
            if numeric {
                let mut items: Vec<(usize, Value)> = m
                    .into_iter()
                    .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, normalise(v, ""))))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    m.into_iter()
                        .map(|(k, v)| {
                            let nv = normalise(v, &k);
                            (k, nv)
                        })
                        .collect(),
                )
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|v| normalise(v, "")).collect()),
        other => other,
    }
}

/// Parses a form body or query string into a JSON object tree.
pub fn parse(input: &[u8]) -> Result<Map<String, Value>, String> {
    let mut root = Map::new();
    for (k, v) in form_urlencoded::parse(input) {
        let (base, segs) = split_key(&k)?;
        insert(&mut root, &base, &segs, v.into_owned(), &k)?;
    }
    Ok(root
        .into_iter()
        .map(|(k, v)| {
            let nv = normalise(v, &k);
            (k, nv)
        })
        .collect())
}

/// Request parameters with Stripe-style validation errors.
pub struct Params(pub Map<String, Value>);

impl Params {
    /// Refuses top-level parameters the endpoint does not know, like Stripe.
    pub fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for k in self.0.keys() {
            if k != "expand" && !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!("Received unknown parameter: {k}")).param(k));
            }
        }
        Ok(())
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A string parameter; `Some("")` means "unset" to the caller.
    pub fn str(&self, key: &str) -> Result<Option<&str>, ApiError> {
        str_at(self.0.get(key), key)
    }

    /// A string, with the empty string read as absent.
    pub fn nonempty(&self, key: &str) -> Result<Option<&str>, ApiError> {
        Ok(self.str(key)?.filter(|s| !s.is_empty()))
    }

    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.nonempty(key)?
            .ok_or_else(|| ApiError::missing_param(key))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        int_at(self.0.get(key), key)
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        bool_at(self.0.get(key), key)
    }

    /// One of `choices`, or absent.
    pub fn choice(&self, key: &str, choices: &[&str]) -> Result<Option<String>, ApiError> {
        choice_at(self.0.get(key), key, choices)
    }

    pub fn obj(&self, key: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            // `shipping=` unsets a hash in Stripe's encoding.
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => {
                Err(ApiError::invalid(format!("Invalid object: {key} must be a hash")).param(key))
            }
        }
    }

    /// `a[]=x&a[]=y`, `a[0]=x` or a single `a=x`.
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(Vec::new())),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ApiError::invalid(format!(
                        "Invalid array: {key} must contain strings"
                    ))
                    .param(key)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::invalid(format!("Invalid array: {key}")).param(key)),
        }
    }

    pub fn expand(&self) -> Vec<String> {
        self.list("expand").ok().flatten().unwrap_or_default()
    }
}

pub fn str_at<'a>(v: Option<&'a Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(format!(
            "Invalid string: {key} must be a string, not a hash or array"
        ))
        .param(key)),
    }
}

pub fn int_at(v: Option<&Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match str_at(v, key)? {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("Invalid integer: {s}")).param(key)),
    }
}

pub fn bool_at(v: Option<&Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match str_at(v, key)? {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(s) => Err(ApiError::invalid(format!("Invalid boolean: {s}")).param(key)),
    }
}

pub fn choice_at(
    v: Option<&Value>,
    key: &str,
    choices: &[&str],
) -> Result<Option<String>, ApiError> {
    match str_at(v, key)? {
        None | Some("") => Ok(None),
        Some(s) if choices.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(ApiError::invalid(format!(
            "Invalid {key}: must be one of {}",
            choices.join(", ")
        ))
        .param(key)
        .with("received", Value::String(s.to_string()))),
    }
}

/// Applies `metadata[...]` updates to `current` with Stripe's rules: at most
/// 50 keys, keys ≤ 40 chars, values ≤ 500 chars, an empty value deletes the
/// key and `metadata=` clears all.
pub fn apply_metadata(current: &mut Value, p: &Params) -> Result<(), ApiError> {
    let Some(given) = p.get("metadata") else {
        return Ok(());
    };
    if !current.is_object() {
        *current = Value::Object(Map::new());
    }
    let Value::Object(cur) = current else {
        return Ok(());
    };
    match given {
        Value::String(s) if s.is_empty() => {
            cur.clear();
            return Ok(());
        }
        Value::Object(m) => {
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Err(ApiError::invalid(format!(
                        "Invalid value for metadata[{k}]: must be a string"
                    ))
                    .param(&format!("metadata[{k}]")));
                };
                if k.len() > 40 {
                    return Err(ApiError::invalid(format!(
                        "Metadata key \"{k}\" is too long; keys can be at most 40 characters."
                    ))
                    .param(&format!("metadata[{k}]")));
                }
                if v.chars().count() > 500 {
                    return Err(ApiError::invalid(format!(
                        "Metadata values can have up to 500 characters, but you passed in a value that is {} characters. Invalid value: metadata[{k}]",
                        v.chars().count()
                    ))
                    .param(&format!("metadata[{k}]")));
                }
                if v.is_empty() {
                    cur.remove(k);
                } else {
                    cur.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        _ => {
            return Err(
                ApiError::invalid("Invalid object: metadata must be a hash").param("metadata")
            )
        }
    }
    if cur.len() > 50 {
        return Err(ApiError::invalid("You can have at most 50 metadata keys.").param("metadata"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Value {
        Value::Object(parse(s.as_bytes()).unwrap())
    }

    #[test]
    fn nested_keys_arrays_and_indices() {
        assert_eq!(
            p("amount=100&metadata[order]=o1&metadata[0]=x&expand[]=latest_charge&expand[]=customer&payment_method_types[]=card&automatic_payment_methods[enabled]=true"),
            json!({"amount":"100","metadata":{"order":"o1","0":"x"},"expand":["latest_charge","customer"],
                   "payment_method_types":["card"],"automatic_payment_methods":{"enabled":"true"}})
        );
        assert_eq!(
            p("items[0][price]=a&items[1][price]=b&items[1][quantity]=2"),
            json!({"items":[{"price":"a"},{"price":"b","quantity":"2"}]})
        );
        assert_eq!(
            p("items[][price]=a&items[][quantity]=1&items[][price]=b"),
            json!({"items":[{"price":"a","quantity":"1"},{"price":"b"}]})
        );
        assert_eq!(
            p("invoice_settings%5Bdefault_payment_method%5D=pm_1&email=a%2Bb%40x.io"),
            json!({"invoice_settings":{"default_payment_method":"pm_1"},"email":"a+b@x.io"})
        );
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        for bad in [
            "a[b=1",
            "[x]=1",
            "a[b]c=1",
            "a=1&a[b]=2",
            "a[b]=1&a=2",
            "a[][]=1",
            "a[]=1&a[x]=2",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
