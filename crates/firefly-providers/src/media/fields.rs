//! Reading a few top-level members of a JSON request without building the rest, and
//! splicing a new model into the client's bytes.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::openai::RequestError;

/// The members named `names` of the JSON object `body`, borrowed from it; every other member
/// is skipped. A name that occurs twice is refused: the relay and the upstream could each
/// read a different one.
pub(crate) fn pick<'a, const N: usize>(
    body: &'a [u8],
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], RequestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let picked = Pick { names }.deserialize(&mut deserializer).and_then(|p| deserializer.end().map(|()| p));
    match picked {
        Ok((_, Some(duplicate))) => Err(RequestError::Duplicate { field: names[duplicate] }),
        Ok((values, None)) => Ok(values),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(RequestError::NotAnObject),
        Err(e) => Err(RequestError::InvalidJson(e.to_string())),
    }
}

struct Pick<const N: usize> {
    names: [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Pick<N> {
    type Value = ([Option<&'de RawValue>; N], Option<usize>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<N> {
    type Value = ([Option<&'de RawValue>; N], Option<usize>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = [None; N];
        let mut duplicate = None;
        while let Some(index) = map.next_key_seed(KeyIndex(&self.names))? {
            match index {
                Some(i) => {
                    if values[i].replace(map.next_value()?).is_some() && duplicate.is_none() {
                        duplicate = Some(i);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((values, duplicate))
    }
}

/// A key as its position among the names read; keys arrive unescaped, borrowed or not.
struct KeyIndex<'n>(&'n [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == v))
    }
}

/// A string member; `null` counts as absent.
pub(crate) fn string(raw: Option<&RawValue>, field: &'static str) -> Result<Option<String>, RequestError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get())
            .map_err(|_| RequestError::InvalidType { field, expected: "a string" }),
    }
}

/// A required, non-empty string member.
pub(crate) fn required_string(raw: Option<&RawValue>, field: &'static str) -> Result<String, RequestError> {
    match string(raw, field)? {
        None => Err(RequestError::Missing { field }),
        Some(s) if s.is_empty() => Err(RequestError::InvalidValue { field, reason: "must not be empty" }),
        Some(s) => Ok(s),
    }
}

/// A non-negative integer member; `null` counts as absent.
pub(crate) fn uint(raw: Option<&RawValue>, field: &'static str) -> Result<Option<u64>, RequestError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<u64>>(raw.get())
            .map_err(|_| RequestError::InvalidType { field, expected: "a non-negative integer" }),
    }
}

/// A number member; `null` counts as absent.
pub(crate) fn number(raw: Option<&RawValue>, field: &'static str) -> Result<Option<f64>, RequestError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<f64>>(raw.get())
            .map_err(|_| RequestError::InvalidType { field, expected: "a number" }),
    }
}

/// `body` with the JSON value at `span` replaced by the string `value`.
pub(crate) fn splice_string(body: &Bytes, span: Range<usize>, value: &str) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + value.len() + 2);
    out.extend_from_slice(&body[..span.start]);
    // Infallible: a `str` always serializes, and writing to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(&body[span.end..]);
    Bytes::from(out)
}
