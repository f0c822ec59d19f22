//! A pass over JSON text that refuses duplicate object keys (serde_json keeps the last
//! one silently, so `{"a":1,"a":2}` would quietly mean something the author did not see).

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Marker that starts the message of a duplicate-key error, so callers can tell it from a
/// syntax error (whose position serde appends in both cases).
pub const PREFIX: &str = "duplicate key ";

/// Ok when no object in `text` repeats a key; else "duplicate key a.b" (dotted path).
/// Syntax errors are left to the real parse, which reports them better.
pub fn check(text: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    match (Walk {
        path: String::new(),
    })
    .deserialize(&mut de)
    {
        Ok(()) => Ok(()),
        Err(e) => {
            let full = e.to_string();
            if !full.starts_with(PREFIX) {
                return Ok(());
            }
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            Err(full.strip_suffix(&suffix).unwrap_or(&full).to_owned())
        }
    }
}

struct Walk {
    path: String,
}

impl Walk {
    fn child(&self, key: &str) -> Walk {
        Walk {
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(self.child(&format!("[{i}]")))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if !seen.insert(key) {
                let shown: String = child
                    .path
                    .chars()
                    .flat_map(char::escape_debug)
                    .take(200)
                    .collect();
                return Err(A::Error::custom(format!("{PREFIX}{shown}")));
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_named_by_path() {
        assert_eq!(check(r#"{"a":1,"b":{"c":[{"d":1}]}}"#), Ok(()));
        assert_eq!(check(r#"{"a":1,"a":2}"#), Err("duplicate key a".to_owned()));
        assert_eq!(
            check(r#"{"operator":{"llm":{"mode":"off","mode":"auto"}}}"#),
            Err("duplicate key operator.llm.mode".to_owned())
        );
        assert_eq!(
            check(r#"{"x":[{"k":1},{"k":1,"k":2}]}"#),
            Err("duplicate key x.[1].k".to_owned())
        );
        // Escapes are compared decoded: "\u0061" is "a".
        assert!(check(r#"{"a":1,"\u0061":2}"#).is_err());
        // Syntax errors are the real parser's to report.
        assert_eq!(check("{"), Ok(()));
    }
}
