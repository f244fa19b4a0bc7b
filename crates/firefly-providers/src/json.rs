//! Reading JSON without building it: serde visitors that find a value's shape, or one
//! member's bytes, while skipping everything else without allocating.

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The shape of a value, found without building it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Null,
    Bool(bool),
    Uint(u64),
    /// A negative or fractional number, a string, or an object.
    Other,
    /// An array and its length.
    Array(usize),
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Shape, E> {
        Ok(Shape::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Shape, E> {
        Ok(Shape::Uint(v))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut len = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        Ok(Shape::Array(len))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
}

/// One member of a JSON object, found by name.
pub(crate) struct Member<'a> {
    /// How many members the object has.
    pub members: usize,
    /// The member's value, borrowed from the input.
    pub value: Option<&'a RawValue>,
    /// The name occurs more than once.
    pub duplicate: bool,
}

impl<'a> Member<'a> {
    /// Reads `json`, which must be one object, for the member `name`.
    pub fn find(json: &'a [u8], name: &'static str) -> serde_json::Result<Member<'a>> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let member = FindMember(name).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(member)
    }
}

struct FindMember(&'static str);

impl<'de> DeserializeSeed<'de> for FindMember {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindMember {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        let mut member = Member { members: 0, value: None, duplicate: false };
        while let Some(is_it) = map.next_key_seed(IsKey(self.0))? {
            member.members += 1;
            if is_it {
                member.duplicate |= member.value.replace(map.next_value()?).is_some();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(member)
    }
}

/// Deserializes a key as whether it equals the given name. Keys arrive unescaped, borrowed
/// or not: no allocation either way.
struct IsKey(&'static str);

impl<'de> DeserializeSeed<'de> for IsKey {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for IsKey {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// Where `part`, borrowed from `whole` by serde, lies in `whole`.
pub(crate) fn span_in(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    assert!(start.checked_add(part.len()).is_some_and(|end| end <= whole.len()), "the part lies in the whole");
    start..start + part.len()
}

/// The raw bytes of the member `name` of the top-level object in `json`, found by a scan
/// that skips every other value without parsing it: strings are jumped over with
/// `memchr`, objects and arrays by counting brackets outside strings. It checks the
/// structure it walks (keys, colons, commas, balanced brackets) but not the insides of the
/// values it skips; the value it returns is for a real parser.
///
/// `None` when `json` is not an object, the structure breaks, or the name is absent or
/// occurs more than once (serde's derived structs refuse duplicates too). A key spelled
/// with escapes is not recognised. Used for reading usage off a whole answer, where a
/// full parse cost most of the relay's JSON time.
pub fn top_level_member<'a>(json: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b'}') {
        return None;
    }
    let mut found = None;
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(json, i)?;
        let key = &json[i + 1..key_end - 1];
        i = skip_ws(json, key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(json, i + 1);
        let end = value_end(json, start)?;
        if key == name && found.replace(&json[start..end]).is_some() {
            return None;
        }
        i = skip_ws(json, end);
        match json.get(i)? {
            b',' => i = skip_ws(json, i + 1),
            b'}' => return found,
            _ => return None,
        }
    }
}

/// The bytes a container's skip stops at: a quote and the brackets.
static STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'}' as usize] = true;
    table[b'[' as usize] = true;
    table[b']' as usize] = true;
    table
};

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(i) {
        i += 1;
    }
    i
}

/// The index just past the string that opens at `start` (a quote).
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
        if json[i] == b'"' {
            return Some(i + 1);
        }
        // A backslash escapes the next byte (`\"`, `\\`; `\u` needs nothing more).
        i += 2;
    }
}

/// The index just past the value that starts at `start`.
fn value_end(json: &[u8], start: usize) -> Option<usize> {
    match *json.get(start)? {
        b'"' => string_end(json, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                // Bytes that matter are rare: step over the others with one table lookup.
                i += json.get(i..)?.iter().position(|&b| STRUCTURAL[b as usize])?;
                match json[i] {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                }
                i += 1;
            }
        }
        _ => {
            let len = json[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(json.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

#[cfg(test)]
mod top_level_tests {
    use super::top_level_member;
    use serde_json::Value;

    /// What a full parse says the member is (`None` for invalid JSON, a non-object or an
    /// absent name; none of the documents below repeats a top-level name).
    fn by_serde(json: &str, name: &str) -> Option<Value> {
        let value: Value = serde_json::from_str(json).ok()?;
        value.as_object()?.get(name).cloned()
    }

    #[test]
    fn finds_the_member_a_full_parse_finds() {
        let docs = [
            r#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            r#"{"usage":{"a":[1,{"b":"}"}]},"id":"x"}"#,
            r#" { "choices" : [ {"message":{"content":"say \"usage\": {\\\"x\\\"} ]]}}"}} ] , "usage" : { "total_tokens" : 9 } } "#,
            r#"{"nested":{"usage":{"total_tokens":1}},"usage":null}"#,
            r#"{"nested":{"usage":{"total_tokens":1}}}"#,
            r#"{"usage":12.5e3,"x":true}"#,
            r#"{"x":"\\","usage":"text"}"#,
            r#"{"x":[],"y":{},"usage":[1,2]}"#,
            r#"{}"#,
            r#"[{"usage":1}]"#,
            r#""usage""#,
        ];
        for doc in docs {
            let found =
                top_level_member(doc.as_bytes(), b"usage").map(|raw| serde_json::from_slice::<Value>(raw).unwrap());
            assert_eq!(found, by_serde(doc, "usage"), "{doc}");
        }
    }

    #[test]
    fn broken_or_ambiguous_documents_give_nothing() {
        for doc in [
            r#"{"usage":{"a":1}"#,
            r#"{"usage":{"a":1},"usage":{"a":2}}"#,
            r#"{"usage" {"a":1}}"#,
            r#"{"usage":{"a":1} "x":1}"#,
            r#"{"x":"unterminated, "usage":1"#,
            r#"{"usage":}"#,
            r#"{"x":1,}"#,
            "",
            "{",
        ] {
            assert_eq!(top_level_member(doc.as_bytes(), b"usage"), None, "{doc}");
        }
    }

    #[test]
    fn every_prefix_of_a_document_is_handled_without_panicking() {
        let doc = r#"{"id":"x","choices":[{"message":{"content":"a \"b\" \\ c"}}],"usage":{"total_tokens":9}}"#;
        for end in 0..doc.len() {
            let prefix = &doc.as_bytes()[..end];
            assert_eq!(top_level_member(prefix, b"usage"), None, "{}", String::from_utf8_lossy(prefix));
        }
        assert!(top_level_member(doc.as_bytes(), b"usage").is_some());
    }
}
