//! Canonical JSON text (RFC 8785 style) for free-form values: tool inputs and outputs,
//! configs, metadata.
//!
//! Rules (see docs/reference/FORMAT.md): object members sorted by the UTF-16 code units of their
//! keys; no insignificant whitespace; strings escape only `"`, `\` and control
//! characters below U+0020 (`\b \t \n \f \r` by name, others as `\u00xx`); integers that
//! fit in i64/u64 are written exactly; every other number is an IEEE double written as
//! ECMAScript's `Number.prototype.toString` writes it (so `1.0` → `1`, `1e21` → `1e+21`).

use std::fmt;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::error::FormatError;

/// A JSON value stored as its canonical text. Two equal values always have equal text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct CanonicalJson(String);

impl CanonicalJson {
    /// Canonicalises a parsed value.
    pub fn from_value(value: &Value) -> Self {
        let mut out = String::new();
        write_value(&mut out, value);
        CanonicalJson(out)
    }

    /// Parses JSON text and canonicalises it.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FormatError::Json { context: "free-form JSON value".into(), reason: e.to_string() })?;
        Ok(Self::from_value(&value))
    }

    /// Wraps text that must already be canonical (checked).
    pub fn from_canonical_text(text: String) -> Result<Self, FormatError> {
        let again = Self::parse(&text)?;
        if again.0 != text {
            return Err(FormatError::NotCanonical {
                what: "JSON text",
                reason: format!("canonical form is {}", again.0),
            });
        }
        Ok(CanonicalJson(text))
    }

    /// JSON `null`.
    pub fn null() -> Self {
        CanonicalJson("null".to_owned())
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text back into a value.
    pub fn to_value(&self) -> Value {
        // The text is canonical JSON by construction, so parsing cannot fail.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CanonicalJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CanonicalJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(CanonicalJson::from_value(&v))
    }
}

impl From<&Value> for CanonicalJson {
    fn from(v: &Value) -> Self {
        CanonicalJson::from_value(v)
    }
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                // serde_json never yields a non-finite double.
                out.push_str(&format_es_number(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes a JSON string literal with RFC 8785 escaping. Runs of characters that need no
/// escape are copied whole (most text has none).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            b'\t' => Some("\\t"),
            b'\n' => Some("\\n"),
            0x0c => Some("\\f"),
            b'\r' => Some("\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        // Every byte matched above is ASCII, so `i` is a char boundary.
        out.push_str(&s[run_start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{:04x}", b)),
        }
        run_start = i + 1;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// Formats a finite double as ECMAScript's `Number.prototype.toString` does.
pub fn format_es_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as ECMAScript requires.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1; // value = 0.d1..dk × 10^n
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        CanonicalJson::parse(s).unwrap().as_str().to_owned()
    }

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        assert_eq!(canon(r#"{ "b": 1, "a": [true, null, "x"] }"#), r#"{"a":[true,null,"x"],"b":1}"#);
    }

    #[test]
    fn sorts_keys_by_utf16_code_units() {
        // U+FF61 sorts before U+1F600 in UTF-16 (0xFF61 < 0xD83D? no: 0xD83D < 0xFF61).
        assert_eq!(canon("{\"\u{ff61}\":1,\"\u{1f600}\":2}"), "{\"\u{1f600}\":2,\"\u{ff61}\":1}");
    }

    #[test]
    fn numbers_follow_ecmascript() {
        assert_eq!(canon("1.0"), "1");
        assert_eq!(canon("-0.0"), "0");
        assert_eq!(canon("1e21"), "1e+21");
        assert_eq!(canon("1e20"), "100000000000000000000");
        assert_eq!(canon("0.000001"), "0.000001");
        assert_eq!(canon("0.0000001"), "1e-7");
        assert_eq!(canon("123.456"), "123.456");
        assert_eq!(canon("-1.5e-10"), "-1.5e-10");
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(canon("0.1"), "0.1");
        assert_eq!(canon("5e-324"), "5e-324");
    }

    #[test]
    fn escapes_only_what_rfc8785_escapes() {
        assert_eq!(canon(r#""a\u0001\n\"\\\u2028é/""#), "\"a\\u0001\\n\\\"\\\\\u{2028}é/\"");
    }

    #[test]
    fn from_canonical_text_rejects_noncanonical() {
        assert!(CanonicalJson::from_canonical_text("{\"b\":1,\"a\":2}".into()).is_err());
        assert!(CanonicalJson::from_canonical_text("{\"a\":2,\"b\":1}".into()).is_ok());
    }
}
