//! What both test layers check of port 9100's contract v1 answers: the §7
//! failure envelope and the Prometheus exposition of `/metrics`.

use std::collections::HashMap;

use serde_json::Value;

/// The §7 envelope's `error`, checked for its required fields.
pub fn envelope_error(v: &Value) -> &Value {
    assert_eq!(v["status"], "error", "{v}");
    let e = &v["error"];
    for k in ["category", "code", "message", "transient", "details"] {
        assert!(e.get(k).is_some(), "no error.{k}: {v}");
    }
    e
}

/// Every sample of a Prometheus exposition, by `name{labels}`; panics on a
/// line that is not a comment or a sample.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        out.insert(series.to_owned(), value);
    }
    out
}

/// The `content-type` a Prometheus scrape expects of `/metrics`.
pub fn assert_prometheus_type(content_type: &str) {
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
}
