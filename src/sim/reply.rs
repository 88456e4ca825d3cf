//! Small helpers for the plug's JSON answers.

use serde_json::{Value, json};

pub(crate) fn err(code: i64, msg: &str) -> Value {
    json!({"err_code": code, "err_msg": msg})
}

pub(crate) fn ok() -> Value {
    json!({"err_code": 0})
}

pub(crate) fn with_ok(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("err_code".into(), json!(0));
    }
    v
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
