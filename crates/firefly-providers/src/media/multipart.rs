//! A small, strict `multipart/form-data` reader (RFC 7578 over RFC 2046's multipart syntax)
//! that finds the parts of a body already in memory and never copies their contents.
//!
//! Strict where it costs clients nothing: lines end in CRLF, every part has a
//! `Content-Disposition: form-data` with a `name`, header blocks are bounded, the body ends
//! with the closing delimiter. Lenient where RFC 2046 is: a preamble before the first
//! delimiter, transport padding after a delimiter, an epilogue after the last. A delimiter
//! only counts at the start of a line and when followed by `--`, padding and CRLF, so a file
//! that merely contains the boundary's text is read as data. Quoted parameter values take
//! backslash escapes; `filename*` (RFC 5987) is not decoded, as RFC 7578 forbids it.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use memchr::memmem;

use super::TranscriptionError;

/// The most parts one body may have.
pub const MAX_PARTS: usize = 64;

/// The largest header block one part may have, in bytes.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// RFC 2046's longest boundary.
const MAX_BOUNDARY: usize = 70;

/// A parsed `multipart/form-data` body: the client's buffer and where its parts lie.
#[derive(Clone, Debug)]
pub struct Multipart {
    body: Bytes,
    parts: Vec<Part>,
}

/// One part: its form name, file name and content type, and where its contents lie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    name: Box<str>,
    filename: Option<Box<str>>,
    content_type: Option<Box<str>>,
    data: Range<usize>,
}

impl Part {
    /// The form field's name (`Content-Disposition`'s `name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The uploaded file's name, for a file part.
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// The part's `Content-Type`, as sent.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Where the contents lie in the body.
    pub fn range(&self) -> Range<usize> {
        self.data.clone()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl Multipart {
    /// Reads `body` with the boundary given in `content_type`
    /// (`multipart/form-data; boundary=…`, the boundary quoted or not).
    pub fn parse(content_type: &str, body: Bytes) -> Result<Multipart, TranscriptionError> {
        let boundary = boundary(content_type)?;
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary.as_bytes());
        let parts = read_parts(&body, &delimiter)?;
        Ok(Multipart { body, parts })
    }

    /// The client's body, as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The contents of `part`, a slice of the body (no copy).
    pub fn data(&self, part: &Part) -> Bytes {
        self.body.slice(part.data.clone())
    }

    /// The first part named `name`.
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| &*p.name == name)
    }

    /// The body with the contents of `part` replaced by `value`, every other byte as it was.
    pub fn replace(&self, part: &Part, value: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(self.body.len() - part.data.len() + value.len());
        out.extend_from_slice(&self.body[..part.data.start]);
        out.extend_from_slice(value);
        out.extend_from_slice(&self.body[part.data.end..]);
        Bytes::from(out)
    }
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Result<String, TranscriptionError> {
    let (media_type, rest) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !media_type.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(TranscriptionError::UnsupportedContentType);
    }
    let params = parameters(rest).map_err(|()| TranscriptionError::InvalidBoundary)?;
    let boundary = params
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or(TranscriptionError::MissingBoundary)?;
    let valid = (1..=MAX_BOUNDARY).contains(&boundary.len())
        && boundary.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !boundary.ends_with(' ');
    if valid {
        Ok(boundary.into_owned())
    } else {
        Err(TranscriptionError::InvalidBoundary)
    }
}

/// `; name=value; name="quoted \"value\""` parameters, after a media type or disposition.
/// Parameters without a value are skipped.
fn parameters(text: &str) -> Result<Vec<(&str, Cow<'_, str>)>, ()> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b';' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i == b.len() {
            return Ok(out);
        }
        let name_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b';' {
            i += 1;
        }
        let name = text[name_start..i].trim();
        if i == b.len() || b[i] == b';' {
            continue;
        }
        i += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut value = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(()),
                    Some(b'"') => break,
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            i += 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i < b.len() && b[i] != b';' {
                return Err(());
            }
            // Only ASCII bytes were dropped, so the rest is still UTF-8.
            out.push((name, Cow::Owned(String::from_utf8(value).map_err(|_| ())?)));
        } else {
            let value_start = i;
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
            out.push((name, Cow::Borrowed(text[value_start..i].trim())));
        }
    }
}

/// What follows a delimiter's text.
enum Tail {
    /// `--`: the closing delimiter.
    Close,
    /// Padding and CRLF: a part starts at this offset.
    Part(usize),
    /// The body ends before it can tell.
    Incomplete,
    /// Something else: the text was data, not a delimiter.
    NotDelimiter,
}

fn tail(body: &[u8], after: usize) -> Tail {
    let rest = &body[after.min(body.len())..];
    if rest.starts_with(b"--") {
        return Tail::Close;
    }
    let padding = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let line = &rest[padding..];
    if line.starts_with(b"\r\n") {
        Tail::Part(after + padding + 2)
    } else if line.is_empty() || line == b"\r" || rest == b"-" {
        Tail::Incomplete
    } else {
        Tail::NotDelimiter
    }
}

/// The next delimiter (`\r\n--boundary` then `--` or padding and CRLF) at or after `from`:
/// its offset and what follows it.
fn next_delimiter(body: &[u8], finder: &memmem::Finder<'_>, from: usize) -> Result<(usize, Tail), TranscriptionError> {
    let mut at = from;
    while let Some(found) = finder.find(&body[at..]) {
        let start = at + found;
        match tail(body, start + finder.needle().len()) {
            Tail::NotDelimiter => at = start + 1,
            Tail::Incomplete => return Err(TranscriptionError::Truncated),
            tail => return Ok((start, tail)),
        }
    }
    Err(TranscriptionError::Truncated)
}

fn read_parts(body: &[u8], delimiter: &[u8]) -> Result<Vec<Part>, TranscriptionError> {
    let finder = memmem::Finder::new(delimiter);
    // The first delimiter may open the body without a line break before it.
    let mut tail_now =
        if body.starts_with(&delimiter[2..]) { tail(body, delimiter.len() - 2) } else { Tail::NotDelimiter };
    if let Tail::NotDelimiter = tail_now {
        if body.is_empty() || delimiter[2..].starts_with(body) {
            return Err(TranscriptionError::Truncated);
        }
        tail_now = match finder.find(body) {
            Some(_) => next_delimiter(body, &finder, 0)?.1,
            None => return Err(TranscriptionError::Malformed("the body does not contain the boundary")),
        };
    }
    let mut parts = Vec::new();
    loop {
        let start = match tail_now {
            Tail::Close => return Ok(parts),
            Tail::Part(start) => start,
            Tail::Incomplete => return Err(TranscriptionError::Truncated),
            Tail::NotDelimiter => return Err(TranscriptionError::Malformed("the body does not contain the boundary")),
        };
        if parts.len() == MAX_PARTS {
            return Err(TranscriptionError::TooLarge("a body may have at most 64 parts"));
        }
        let (headers, data_start) = header_block(body, start)?;
        let (name, filename, content_type) = read_headers(headers)?;
        let (end, next) = next_delimiter(body, &finder, data_start)?;
        parts.push(Part { name, filename, content_type, data: data_start..end });
        tail_now = next;
    }
}

/// A part's header block (without its closing blank line) and where its contents start.
fn header_block(body: &[u8], start: usize) -> Result<(&[u8], usize), TranscriptionError> {
    let rest = &body[start..];
    if rest.starts_with(b"\r\n") {
        return Ok((&[], start + 2));
    }
    let window = &rest[..rest.len().min(MAX_PART_HEADER_BYTES + 4)];
    match memmem::find(window, b"\r\n\r\n") {
        Some(end) => Ok((&rest[..end], start + end + 4)),
        None if rest.len() < MAX_PART_HEADER_BYTES + 4 => Err(TranscriptionError::Truncated),
        None => Err(TranscriptionError::TooLarge("a part's headers may have at most 8192 bytes")),
    }
}

type Disposition = (Box<str>, Option<Box<str>>, Option<Box<str>>);

/// The name, file name and content type a part's headers give.
fn read_headers(block: &[u8]) -> Result<Disposition, TranscriptionError> {
    let text =
        std::str::from_utf8(block).map_err(|_| TranscriptionError::Malformed("a part's headers are not UTF-8"))?;
    let mut disposition = None;
    let mut content_type = None;
    if !text.is_empty() {
        for line in text.split("\r\n") {
            if line.contains(['\r', '\n']) {
                return Err(TranscriptionError::Malformed("a part's header lines must end in CRLF"));
            }
            if line.starts_with([' ', '\t']) {
                return Err(TranscriptionError::Malformed("folded part headers are not accepted"));
            }
            let (name, value) =
                line.split_once(':').ok_or(TranscriptionError::Malformed("a part's header line has no ':'"))?;
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                return Err(TranscriptionError::Malformed("a part's header name is invalid"));
            }
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-disposition") {
                if disposition.replace(value).is_some() {
                    return Err(TranscriptionError::Malformed("a part has two Content-Disposition headers"));
                }
            } else if name.eq_ignore_ascii_case("content-type") && content_type.replace(value).is_some() {
                return Err(TranscriptionError::Malformed("a part has two Content-Type headers"));
            }
        }
    }
    let disposition = disposition.ok_or(TranscriptionError::Malformed("a part has no Content-Disposition header"))?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(TranscriptionError::Malformed("a part's Content-Disposition is not form-data"));
    }
    let params =
        parameters(params).map_err(|()| TranscriptionError::Malformed("a part's Content-Disposition is invalid"))?;
    let mut name = None;
    let mut filename = None;
    for (key, value) in params {
        if key.eq_ignore_ascii_case("name") {
            if name.replace(value).is_some() {
                return Err(TranscriptionError::Malformed("a part's Content-Disposition has two names"));
            }
        } else if key.eq_ignore_ascii_case("filename") && filename.replace(value).is_some() {
            return Err(TranscriptionError::Malformed("a part's Content-Disposition has two file names"));
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or(TranscriptionError::Malformed("a part's Content-Disposition has no name"))?;
    Ok((
        name.into_owned().into_boxed_str(),
        filename.map(|f| f.into_owned().into_boxed_str()),
        content_type.map(|c| c.to_owned().into_boxed_str()),
    ))
}
