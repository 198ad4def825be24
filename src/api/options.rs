//! Where a request's options may be, and how they become one [`Params`].
//!
//! Upstream clients put options in different places: the spec's top-level
//! `params`, KAI-C and the web UI `input.params`, upstream's legacy adapters
//! read them straight from `input`; and they spell `confidence` as
//! `confidence_threshold`. All of these are read. A key that is no option is
//! a 400 naming it; the same option given twice with different values is a
//! 400 naming both places (we would otherwise have to pick one silently).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::ai::{AiError, Params};

/// Whether two option values are the same (numbers by value: `1` and `1.0` agree).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Merges options from `sources` (`(place, map)`; `place` is how error
/// messages name where a key was, e.g. `input.params`) into [`Params`].
pub fn gather(sources: &[(String, &Map<String, Value>)]) -> Result<Params, AiError> {
    let mut merged = Map::new();
    let mut origin: HashMap<&'static str, String> = HashMap::new();
    let mut unknown = Vec::new();
    for (place, map) in sources {
        for (key, value) in map.iter() {
            let here = format!("{place}.{key}");
            let Some(name) = Params::canonical(key) else {
                unknown.push(here);
                continue;
            };
            match merged.get(name) {
                Some(first) if !same(first, value) => {
                    return Err(AiError::BadRequest(format!(
                        "option `{name}` is given twice with different values: `{}` and `{here}`",
                        origin[name]
                    )))
                }
                // Agreeing numbers: keep the integer spelling, so `1.0` then
                // `1` reads as well as `1` then `1.0` for a count.
                Some(_) => {
                    if value.is_i64() || value.is_u64() {
                        merged.insert(name.to_owned(), value.clone());
                    }
                }
                None => {
                    merged.insert(name.to_owned(), value.clone());
                    origin.insert(name, here);
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(AiError::BadRequest(format!(
            "unknown option(s): {}; options are {}",
            unknown.join(", "),
            Params::NAMES.join(", ")
        )));
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| AiError::BadRequest(format!("invalid params: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn msg(e: AiError) -> String {
        e.to_string()
    }

    #[test]
    fn every_place_and_the_alias_are_read() {
        let top = map(json!({"iou": 0.3}));
        let nested = map(json!({"confidence_threshold": 0.9}));
        let flat = map(json!({"max_detections": 2}));
        let p = gather(&[
            ("params".into(), &top),
            ("input.params".into(), &nested),
            ("input".into(), &flat),
        ])
        .unwrap();
        assert_eq!(
            (p.iou, p.confidence, p.max_detections),
            (Some(0.3), Some(0.9), Some(2))
        );
    }

    #[test]
    fn conflicts_are_refused_and_agreements_kept() {
        let a = map(json!({"confidence": 0.5}));
        let b = map(json!({"confidence_threshold": 0.9}));
        let e = msg(gather(&[("params".into(), &a), ("data.params".into(), &b)]).unwrap_err());
        assert!(
            e.contains("params.confidence") && e.contains("data.params.confidence_threshold"),
            "{e}"
        );
        let c = map(json!({"max_faces": 1.0}));
        let d = map(json!({"max_faces": 1}));
        let p = gather(&[("params".into(), &d), ("data".into(), &c)]).unwrap();
        assert_eq!(p.max_faces, Some(1));
        let p = gather(&[("params".into(), &c), ("data".into(), &d)]).unwrap();
        assert_eq!(p.max_faces, Some(1), "either order");
    }

    #[test]
    fn unknown_keys_are_all_named() {
        let a = map(json!({"confidense": 0.5, "iou": 0.4, "zoom": 2}));
        let e = msg(gather(&[("input.params".into(), &a)]).unwrap_err());
        assert!(
            e.contains("input.params.confidense") && e.contains("input.params.zoom"),
            "{e}"
        );
    }

    #[test]
    fn every_name_is_a_field_and_every_field_is_named() {
        // Names every field: a field added to `Params` breaks this pattern
        // until it is added here, and so to `Params::NAMES` (the next check),
        // without which every request naming it would be refused.
        let Params {
            confidence: _,
            iou: _,
            max_detections: _,
            model: _,
            classes: _,
            min_confidence: _,
            max_faces: _,
            attributes: _,
            engine: _,
        } = Params::default();
        assert_eq!(Params::NAMES.len(), 9, "one name per field above");
        for name in Params::NAMES {
            let v = if name == "model" || name == "engine" {
                json!("m")
            } else if name == "classes" {
                json!(["person"])
            } else if name == "attributes" {
                json!(true)
            } else {
                json!(1)
            };
            let m = map(json!({ name: v }));
            gather(&[("params".into(), &m)]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
