//! The mediasoup v2 wire format (docs/PROTOCOL.md): decoding what a client sent,
//! encoding responses and server notifications. Rooms receive typed values
//! ([`request::ClientMessage`]), never raw bytes.

pub mod host;
pub mod request;
pub mod rtp;

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::error::{ReqError, ReqResult};

/// The largest integer a JavaScript number holds exactly: ids above it could not
/// be echoed back unchanged.
pub const MAX_JS_INT: u64 = (1 << 53) - 1;

/// A decoded client message (request or notification).
#[derive(Debug, Clone)]
pub struct Message {
    pub method: String,
    pub body: Map<String, Value>,
    /// `notification: true` was present.
    pub notification_flag: bool,
}

/// Decode one message. Every failure is a reason string for the client.
pub fn decode(bytes: &[u8], max_size: usize) -> ReqResult<Message> {
    if bytes.len() > max_size {
        return Err(ReqError(format!(
            "message too large ({} bytes, limit {max_size})",
            bytes.len()
        )));
    }
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ReqError(format!("invalid JSON: {e}")))?;
    let Value::Object(body) = v else {
        return Err("message must be a JSON object".into());
    };
    let method = match body.get("method") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("field `method` must not be empty".into()),
        Some(_) => return Err("field `method` must be a string".into()),
        None => return Err("missing field `method`".into()),
    };
    let notification_flag = body.get("notification").map(truthy).unwrap_or(false);
    Ok(Message {
        method,
        body,
        notification_flag,
    })
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

impl Message {
    /// A required id (non-negative integer that JavaScript holds exactly).
    pub fn id(&self, key: &str) -> ReqResult<u64> {
        match self.body.get(key) {
            None | Some(Value::Null) => Err(ReqError(format!("missing field `{key}`"))),
            Some(v) => as_id(v)
                .ok_or_else(|| ReqError(format!("field `{key}` must be a non-negative integer"))),
        }
    }

    /// An optional id.
    pub fn opt_id(&self, key: &str) -> ReqResult<Option<u64>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.id(key).map(Some),
        }
    }

    pub fn opt_bool(&self, key: &str) -> ReqResult<Option<bool>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ReqError(format!("field `{key}` must be a boolean"))),
        }
    }

    pub fn opt_str(&self, key: &str) -> ReqResult<Option<&str>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ReqError(format!("field `{key}` must be a string"))),
        }
    }

    pub fn str(&self, key: &str) -> ReqResult<&str> {
        self.opt_str(key)?
            .ok_or_else(|| ReqError(format!("missing field `{key}`")))
    }

    /// An optional number (e.g. a stats interval).
    pub fn opt_f64(&self, key: &str) -> ReqResult<Option<f64>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ReqError(format!("field `{key}` must be a number"))),
        }
    }

    /// `appData` and other opaque values, `null` when absent.
    pub fn opaque(&self, key: &str) -> Value {
        self.body.get(key).cloned().unwrap_or(Value::Null)
    }

    pub fn has(&self, key: &str) -> bool {
        !matches!(self.body.get(key), None | Some(Value::Null))
    }

    /// A structured field decoded into `T`.
    pub fn typed<T: DeserializeOwned>(&self, key: &str) -> ReqResult<T> {
        match self.body.get(key) {
            None | Some(Value::Null) => Err(ReqError(format!("missing field `{key}`"))),
            Some(v) => T::deserialize(v).map_err(|e| ReqError(format!("invalid `{key}`: {e}"))),
        }
    }

    pub fn opt_typed<T: DeserializeOwned>(&self, key: &str) -> ReqResult<Option<T>> {
        match self.body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.typed(key).map(Some),
        }
    }
}

/// A JSON number usable as an id.
pub fn as_id(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return (n <= MAX_JS_INT).then_some(n);
    }
    // 12345.0 from some JSON encoders.
    let f = v.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f <= MAX_JS_INT as f64).then_some(f as u64)
}

/// `{"ok":true,"data":...}`.
pub fn ok_response(data: Value) -> String {
    json!({ "ok": true, "data": data }).to_string()
}

/// `{"ok":false,"error":"<reason>"}`.
pub fn error_response(reason: &str) -> String {
    json!({ "ok": false, "error": reason }).to_string()
}

/// A server -> client notification: `{method, target:"peer", notification:true, ...fields}`.
pub fn notification(method: &str, fields: Value) -> String {
    let mut m = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("method".into(), Value::String(method.into()));
    m.insert("target".into(), Value::String("peer".into()));
    m.insert("notification".into(), Value::Bool(true));
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_bad_input_with_reasons() {
        assert!(decode(b"{", 100).unwrap_err().0.contains("invalid JSON"));
        assert!(decode(b"[]", 100).unwrap_err().0.contains("JSON object"));
        assert!(decode(b"{}", 100)
            .unwrap_err()
            .0
            .contains("missing field `method`"));
        assert!(decode(br#"{"method":1}"#, 100)
            .unwrap_err()
            .0
            .contains("must be a string"));
        assert!(decode(&[b' '; 200], 100)
            .unwrap_err()
            .0
            .contains("too large"));
        assert!(decode(&[0xff, 0xfe], 100)
            .unwrap_err()
            .0
            .contains("invalid JSON"));
    }

    #[test]
    fn ids_must_be_exact_js_integers() {
        let m = decode(
            br#"{"method":"x","a":12,"b":-1,"c":"12","d":1.5,"e":12.0,"f":9007199254740993}"#,
            1000,
        )
        .unwrap();
        assert_eq!(m.id("a").unwrap(), 12);
        assert!(m.id("b").is_err());
        assert!(m.id("c").is_err());
        assert!(m.id("d").is_err());
        assert_eq!(m.id("e").unwrap(), 12);
        assert!(m.id("f").is_err());
        assert!(m.id("zz").unwrap_err().0.contains("missing field `zz`"));
    }

    #[test]
    fn notification_has_envelope() {
        let n: Value =
            serde_json::from_str(&notification("peerClosed", json!({"name":"a"}))).unwrap();
        assert_eq!(n["method"], "peerClosed");
        assert_eq!(n["target"], "peer");
        assert_eq!(n["notification"], true);
        assert_eq!(n["name"], "a");
    }
}
