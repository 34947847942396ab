//! The `appversions` JSON served as server metadata: which client versions exist and where to
//! download them. The schema mirrors the client's parser, so a file a client would reject is
//! not served.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Download URLs must point to one of these.
const ALLOWED_URL_PREFIXES: [&str; 2] = [
    "https://github.com/deltachat/",
    "https://download.delta.chat/",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppversionsError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("schema: {0}")]
    Schema(String),
}

fn schema(msg: impl Into<String>) -> AppversionsError {
    AppversionsError::Schema(msg.into())
}

/// Validates the file content and returns it compacted onto one line, keys in file order.
pub fn prepare(text: &str) -> Result<String, AppversionsError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| AppversionsError::Json(e.to_string()))?;
    validate(&value)?;
    compact(text)
}

/// The JSON text without insignificant white space, in its original key order.
pub fn compact(text: &str) -> Result<String, AppversionsError> {
    let mut out = Vec::with_capacity(text.len());
    let mut de = serde_json::Deserializer::from_str(text);
    let mut ser = serde_json::Serializer::new(&mut out);
    serde_transcode::transcode(&mut de, &mut ser)
        .map_err(|e| AppversionsError::Json(e.to_string()))?;
    de.end()
        .map_err(|e| AppversionsError::Json(e.to_string()))?;
    String::from_utf8(out).map_err(|e| AppversionsError::Json(e.to_string()))
}

fn exact_keys<'a>(
    v: &'a Value,
    what: &str,
    keys: &[&str],
) -> Result<&'a Map<String, Value>, AppversionsError> {
    let obj = v
        .as_object()
        .ok_or_else(|| schema(format!("{what} is not an object")))?;
    let mut have: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want = keys.to_vec();
    have.sort_unstable();
    want.sort_unstable();
    if have != want {
        return Err(schema(format!(
            "{what} has keys {have:?}, expected {want:?}"
        )));
    }
    Ok(obj)
}

fn non_empty_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a str, AppversionsError> {
    match obj.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(schema(format!("{what}.{key} must be a non-empty string"))),
    }
}

/// Checks the schema: `{"clients": [{"clientId", "sources": [{"sourceId", "versionInteger",
/// "versionString", "downloadUrl"}]}]}` with exactly these keys, non-empty strings, a
/// `versionInteger` in `0..2^32`, download URLs on the Delta Chat hosts, unique ids.
pub fn validate(v: &Value) -> Result<(), AppversionsError> {
    let top = exact_keys(v, "the top level", &["clients"])?;
    let clients = match top.get("clients").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => return Err(schema("clients must be a non-empty list")),
    };
    let mut client_ids = HashSet::new();
    for client in clients {
        let obj = exact_keys(client, "a client", &["clientId", "sources"])?;
        let id = non_empty_str(obj, "clientId", "a client")?;
        if !client_ids.insert(id) {
            return Err(schema(format!("duplicate clientId {id:?}")));
        }
        let sources = obj
            .get("sources")
            .and_then(Value::as_array)
            .ok_or_else(|| schema(format!("sources of {id:?} must be a list")))?;
        let mut source_ids = HashSet::new();
        for source in sources {
            let s = exact_keys(
                source,
                "a source",
                &["sourceId", "versionInteger", "versionString", "downloadUrl"],
            )?;
            let sid = non_empty_str(s, "sourceId", "a source")?;
            if !source_ids.insert(sid) {
                return Err(schema(format!("duplicate sourceId {sid:?} in {id:?}")));
            }
            non_empty_str(s, "versionString", "a source")?;
            match s.get("versionInteger").and_then(Value::as_u64) {
                Some(n) if n < 1 << 32 => {}
                _ => {
                    return Err(schema(format!(
                        "versionInteger of {sid:?} must be an integer in 0..2^32"
                    )));
                }
            }
            let url = non_empty_str(s, "downloadUrl", "a source")?;
            if !ALLOWED_URL_PREFIXES.iter().any(|p| url.starts_with(p)) {
                return Err(schema(format!(
                    "downloadUrl of {sid:?} is not on a Delta Chat host"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The default file shipped with the package.
    const SHIPPED: &str = include_str!("../appversions.json");

    fn sample() -> Value {
        serde_json::from_str(SHIPPED).unwrap()
    }

    #[test]
    fn shipped_file_is_valid_and_one_line() {
        validate(&sample()).unwrap();
        let served = prepare(SHIPPED).unwrap();
        assert!(!served.contains('\n'));
        assert_eq!(served, SHIPPED.trim_end());
    }

    #[test]
    fn compaction_keeps_key_order() {
        let pretty = "{\n  \"z\": [1, 2],\n  \"a\": {\"k\": \"v w\\n\"}\n}\n";
        assert_eq!(compact(pretty).unwrap(), r#"{"z":[1,2],"a":{"k":"v w\n"}}"#);
        assert!(compact("{} x").is_err());
        assert!(prepare("{").is_err());
    }

    #[test]
    fn version_integer_rejected() {
        for bad in [
            json!(true),
            json!(-1),
            json!(1u64 << 32),
            json!("754"),
            json!(754.0),
            Value::Null,
        ] {
            let mut v = sample();
            v["clients"][0]["sources"][0]["versionInteger"] = bad.clone();
            assert!(validate(&v).is_err(), "{bad}");
        }
        let mut v = sample();
        v["clients"][0]["sources"][0]["versionInteger"] = json!((1u64 << 32) - 1);
        validate(&v).unwrap();
        v["clients"][0]["sources"][0]["versionInteger"] = json!(0);
        validate(&v).unwrap();
    }

    #[test]
    fn misspelled_client_key_rejected() {
        for key in ["clientId", "sources"] {
            let mut v = sample();
            let client = v["clients"][0].as_object_mut().unwrap();
            let value = client.remove(key).unwrap();
            client.insert(format!("{key}x"), value);
            assert!(validate(&v).is_err(), "{key}");
        }
    }

    #[test]
    fn duplicate_ids_rejected() {
        let mut v = sample();
        let source = v["clients"][0]["sources"][0].clone();
        v["clients"][0]["sources"]
            .as_array_mut()
            .unwrap()
            .push(source);
        assert!(validate(&v).is_err());
        let mut v = sample();
        let client = v["clients"][0].clone();
        v["clients"].as_array_mut().unwrap().push(client);
        assert!(validate(&v).is_err());
    }

    #[test]
    fn foreign_download_url_rejected() {
        let mut v = sample();
        v["clients"][0]["sources"][0]["downloadUrl"] = json!("https://evil.example/app.apk");
        assert!(validate(&v).is_err());
        v["clients"][0]["sources"][0]["downloadUrl"] = json!("https://download.delta.chat/x.apk");
        validate(&v).unwrap();
    }

    #[test]
    fn other_shapes_rejected() {
        for bad in [
            json!({}),
            json!({"clients": []}),
            json!({"clients": [], "extra": 1}),
            json!([]),
            json!({"clients": [{"clientId": "", "sources": []}]}),
            json!({"clients": [{"clientId": "x", "sources": {}}]}),
        ] {
            assert!(validate(&bad).is_err(), "{bad}");
        }
        let mut v = sample();
        v["clients"][0]["sources"][0]["versionString"] = json!("");
        assert!(validate(&v).is_err());
    }
}
