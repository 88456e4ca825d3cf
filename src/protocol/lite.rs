//! A borrowed JSON tree for the poll hot path: [`Lite`] is what `serde_json::Value` is, but
//! its strings borrow from the decrypted reply (`Cow`, owned only where the device escaped
//! something), objects are a `Vec` of pairs instead of a map of owned keys, and numbers are
//! `serde_json::Number`s, so a reply costs a handful of allocations instead of one per key and
//! per string. The reply readers ([`super::reply`]) are written once against [`JsonView`],
//! which both `Value` and `Lite` implement, so both decode paths read a reply the same way —
//! the wrong-type and hostile-input behaviour included: a duplicated key reads its last value,
//! as `Value`'s map keeps the last one; the nesting limit is the same parser's.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};

/// A JSON value whose strings borrow from the input where they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Lite<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Lite<'a>>),
    /// Pairs in the order sent, duplicates included (lookups take the last).
    Object(Vec<(Cow<'a, str>, Lite<'a>)>),
}

impl<'a> Lite<'a> {
    /// Parses `plain`, borrowing its strings.
    pub fn from_slice(plain: &'a [u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(plain)
    }

    /// The owned `serde_json::Value` of the same JSON (object keys as `Value` orders them,
    /// duplicates resolved to the last).
    pub fn to_value(&self) -> Value {
        match self {
            Lite::Null => Value::Null,
            Lite::Bool(b) => Value::Bool(*b),
            Lite::Number(n) => Value::Number(n.clone()),
            Lite::String(s) => Value::String(s.as_ref().to_owned()),
            Lite::Array(items) => Value::Array(items.iter().map(Lite::to_value).collect()),
            Lite::Object(pairs) => {
                let mut m = Map::new();
                for (k, v) in pairs {
                    m.insert(k.as_ref().to_owned(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }
}

impl fmt::Display for Lite<'_> {
    /// Compact JSON text, as `Value`'s `Display` writes it (keys sorted, the last of a
    /// duplicated key), written straight from the tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Lite<'_> {
    /// As `serde_json::Value` serialises the same JSON: object keys in sorted order (its map
    /// is a `BTreeMap`), a duplicated key once with its last value.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Lite::Null => s.serialize_unit(),
            Lite::Bool(b) => s.serialize_bool(*b),
            Lite::Number(n) => n.serialize(s),
            Lite::String(v) => s.serialize_str(v),
            Lite::Array(items) => s.collect_seq(items),
            Lite::Object(pairs) => {
                let mut sorted: Vec<(&str, &Lite<'_>)> =
                    pairs.iter().map(|(k, v)| (k.as_ref(), v)).collect();
                // Stable: of a duplicated key, the pair sent last is the last of its run.
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                let mut m = s.serialize_map(Some(sorted.len()))?;
                for (i, (k, v)) in sorted.iter().enumerate() {
                    if sorted.get(i + 1).is_some_and(|next| next.0 == *k) {
                        continue;
                    }
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Lite<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LiteVisitor)
    }
}

struct LiteVisitor;

impl<'de> Visitor<'de> for LiteVisitor {
    type Value = Lite<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Lite<'de>, E> {
        Ok(Lite::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Lite<'de>, E> {
        Ok(Lite::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Lite<'de>, E> {
        Ok(Lite::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Lite<'de>, E> {
        // JSON has no NaN or infinity; serde_json's `Value` makes them null too.
        Ok(Number::from_f64(v).map_or(Lite::Null, Lite::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Lite<'de>, E> {
        Ok(Lite::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Lite<'de>, E> {
        Ok(Lite::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Lite<'de>, E> {
        Ok(Lite::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Lite<'de>, E> {
        Ok(Lite::Null)
    }

    fn visit_unit<E>(self) -> Result<Lite<'de>, E> {
        Ok(Lite::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lite<'de>, D::Error> {
        Lite::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lite<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Lite::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lite<'de>, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            pairs.push((key.0, map.next_value()?));
        }
        Ok(Lite::Object(pairs))
    }
}

/// An object key, borrowed where the input allows.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// What the reply readers need of a JSON tree; implemented by `serde_json::Value` and [`Lite`]
/// with the same meaning (`Value`'s accessors are the reference).
pub trait JsonView: Sized + fmt::Display {
    /// The value of `key` if this is an object that has it (the last one if sent twice).
    fn get(&self, key: &str) -> Option<&Self>;
    fn is_object(&self) -> bool;
    fn as_str(&self) -> Option<&str>;
    fn as_bool(&self) -> Option<bool>;
    fn as_f64(&self) -> Option<f64>;
    fn as_i64(&self) -> Option<i64>;
    fn as_array(&self) -> Option<&[Self]>;
    /// `null`, `a boolean`, …, for messages.
    fn kind(&self) -> &'static str;
    /// Compact JSON text as `Value`'s `Display` writes it (keys sorted, duplicates resolved to
    /// the last), kept as a reading's `raw`: the same text whichever tree read the reply.
    fn to_json_text(&self) -> String;
}

impl JsonView for Value {
    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_f64(&self) -> Option<f64> {
        Value::as_f64(self)
    }
    fn as_i64(&self) -> Option<i64> {
        Value::as_i64(self)
    }
    fn as_array(&self) -> Option<&[Self]> {
        Value::as_array(self).map(Vec::as_slice)
    }
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
    fn to_json_text(&self) -> String {
        self.to_string()
    }
}

impl JsonView for Lite<'_> {
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Lite::Object(pairs) => pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn is_object(&self) -> bool {
        matches!(self, Lite::Object(_))
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Lite::String(s) => Some(s),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Lite::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_f64(&self) -> Option<f64> {
        match self {
            Lite::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    fn as_i64(&self) -> Option<i64> {
        match self {
            Lite::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Lite::Array(items) => Some(items),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Lite::Null => "null",
            Lite::Bool(_) => "a boolean",
            Lite::Number(_) => "a number",
            Lite::String(_) => "a string",
            Lite::Array(_) => "an array",
            Lite::Object(_) => "an object",
        }
    }
    fn to_json_text(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let text = br#"{"a":"plain","b":"esc\"aped","c":[1,-2,3.5,true,null]}"#;
        let l = Lite::from_slice(text).expect("json");
        assert!(matches!(
            l.get("a"),
            Some(Lite::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(l.get("b"), Some(Lite::String(Cow::Owned(s))) if s == "esc\"aped"));
        let v: Value = serde_json::from_slice(text).expect("json");
        assert_eq!(l.to_value(), v);
        assert_eq!(l.to_string(), v.to_string());
    }

    #[test]
    fn the_last_of_a_duplicated_key_wins_as_in_value() {
        let text = br#"{"k":1,"k":"two"}"#;
        let l = Lite::from_slice(text).expect("json");
        let v: Value = serde_json::from_slice(text).expect("json");
        assert_eq!(JsonView::as_str(l.get("k").expect("k")), Some("two"));
        assert_eq!(
            l.get("k").map(JsonView::to_json_text),
            v.get("k").map(JsonView::to_json_text)
        );
        let dup = br#"{"b":1,"a":{"y":2,"x":3,"y":4},"b":5}"#;
        let (l, v): (Lite, Value) = (
            Lite::from_slice(dup).expect("json"),
            serde_json::from_slice(dup).expect("json"),
        );
        assert_eq!(l.to_json_text(), r#"{"a":{"x":3,"y":4},"b":5}"#);
        assert_eq!(l.to_json_text(), v.to_json_text());
    }

    #[test]
    fn accessors_agree_with_value() {
        let text = br#"{"i":-5,"u":18446744073709551615,"f":1.5,"s":"x","n":null,"b":false,"o":{},"a":[]}"#;
        let l = Lite::from_slice(text).expect("json");
        let v: Value = serde_json::from_slice(text).expect("json");
        for k in ["i", "u", "f", "s", "n", "b", "o", "a", "missing"] {
            let (a, b) = (l.get(k), JsonView::get(&v, k));
            assert_eq!(a.map(JsonView::kind), b.map(JsonView::kind), "{k}");
            assert_eq!(
                a.and_then(JsonView::as_f64),
                b.and_then(JsonView::as_f64),
                "{k}"
            );
            assert_eq!(
                a.and_then(JsonView::as_i64),
                b.and_then(JsonView::as_i64),
                "{k}"
            );
            assert_eq!(
                a.and_then(JsonView::as_str),
                b.and_then(JsonView::as_str),
                "{k}"
            );
            assert_eq!(a.map(|x| x.to_string()), b.map(|x| x.to_string()), "{k}");
        }
    }

    #[test]
    fn bad_json_is_an_error_and_deep_nesting_is_refused() {
        assert!(Lite::from_slice(b"\xff\x00garbage").is_err());
        assert!(Lite::from_slice(b"{\"a\":").is_err());
        let deep = "[".repeat(10_000);
        assert!(Lite::from_slice(deep.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parses_what_value_parses_the_same_way(text in "[\\[\\]{}\",:0-9a-z\\\\ .-]{0,40}") {
            let l = Lite::from_slice(text.as_bytes());
            let v: serde_json::Result<Value> = serde_json::from_slice(text.as_bytes());
            proptest::prop_assert_eq!(l.is_ok(), v.is_ok());
            if let (Ok(l), Ok(v)) = (l, v) {
                proptest::prop_assert_eq!(l.to_json_text(), v.to_json_text());
                proptest::prop_assert_eq!(l.to_value(), v);
            }
        }
    }
}
