//! The JSON log line, written straight into the line buffer.
//!
//! The shape is that of `tracing_subscriber`'s JSON formatter with flattened events and
//! the current span — `{"timestamp", "level", fields…, "target", "span": {fields…,
//! "name"}}` — but no value goes through `serde_json`: fields are escaped as they are
//! written, and a span's fields are kept as a ready JSON fragment that each line splices
//! in as it is, instead of parsing and re-serialising them for every event. Every request
//! logs a line, so this is on the hot path (the generic formatter cost about a tenth of a
//! relayed request's instructions).

use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats whole lines ([`FormatEvent`]).
pub struct JsonLine;

/// Formats a span's fields as the inside of a JSON object: `"a":1,"b":"x"`.
#[derive(Default)]
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter { out: &mut writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut visitor = FieldWriter { out: &mut current.fields, first, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, JsonFields>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str("{\"timestamp\":\"")?;
        match timestamp(std::time::SystemTime::now()) {
            Some(text) => w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)?,
            None => SystemTime.format_time(&mut w)?,
        }
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_char('"')?;
        let mut visitor = FieldWriter { out: &mut w, first: false, result: Ok(()) };
        event.record(&mut visitor);
        visitor.result?;
        w.write_str(",\"target\":")?;
        write_json_str(&mut w, meta.target())?;
        let span = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            w.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>().filter(|f| !f.fields.is_empty()) {
                w.write_str(&fields.fields)?;
                w.write_char(',')?;
            }
            w.write_str("\"name\":")?;
            write_json_str(&mut w, span.name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

/// Writes each field as `"name":value`, a comma before all but the first.
struct FieldWriter<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: Write> FieldWriter<'_, W> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.out.write_char(',')?;
            }
            write_json_str(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for FieldWriter<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| write_json_str(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| out.write_str(if value { "true" } else { "false" }));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        self.field(field, |out| if value.is_finite() { write!(out, "{value}") } else { out.write_str("null") });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }

    /// Also what `%value` (Display) and the message arrive as.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(s)?;
    out.write_char('"')
}

/// `now` as RFC 3339 in UTC with microseconds (`2026-11-22T10:00:18.123456Z`), as
/// `tracing_subscriber`'s `SystemTime` writes it but without the formatting machinery;
/// `None` outside the years 1970 to 9999.
fn timestamp(now: std::time::SystemTime) -> Option<[u8; 27]> {
    let since = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        return None;
    }
    let of_day = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    Some(out)
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Escapes what passes through for the inside of a JSON string (RFC 8259 §7): quote,
/// backslash and every control character, so nothing logged can break a line or forge one.
struct Escaped<'a, W: Write + ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Nearly everything logged needs no escaping; this check has no early exit, so
        // it compiles to a few vector instructions per 32 bytes.
        if !bytes.iter().fold(false, |any, &b| any | (b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            // Only ASCII bytes are matched, so `i` is a character boundary.
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(log: impl FnOnce()) -> Vec<Value> {
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields)
            .event_format(JsonLine)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = capture.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    #[test]
    fn every_kind_of_value_makes_valid_json() {
        let error = io::Error::other("disk \"full\"");
        let got = lines(|| {
            tracing::warn!(
                target: "firefly::test",
                text = "tab\there \"quoted\" back\\slash\nnew line \u{1b}[31m ünïcödé",
                shown = %"display \"value\"",
                debugged = ?vec!["a"],
                negative = -5i64,
                big = u64::MAX,
                ratio = 0.25,
                nan = f64::NAN,
                yes = true,
                error = &error as &(dyn std::error::Error + 'static),
                "the message {}", 42
            )
        });
        assert_eq!(got.len(), 1);
        let line = &got[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "firefly::test");
        assert_eq!(line["message"], "the message 42");
        assert_eq!(line["text"], "tab\there \"quoted\" back\\slash\nnew line \u{1b}[31m ünïcödé");
        assert_eq!(line["shown"], "display \"value\"");
        assert_eq!(line["debugged"], "[\"a\"]");
        assert_eq!(line["negative"], -5);
        assert_eq!(line["big"], u64::MAX);
        assert_eq!(line["ratio"], 0.25);
        assert_eq!(line["nan"], Value::Null);
        assert_eq!(line["yes"], true);
        assert_eq!(line["error"], "disk \"full\"");
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert!(line.get("span").is_none(), "no span was entered: {line}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, micros: u32| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000);
            timestamp(t).map(|b| String::from_utf8(b.to_vec()).unwrap())
        };
        // Expected values from Python's datetime.
        assert_eq!(at(0, 0).unwrap(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0).unwrap(), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(951_868_799, 999_999).unwrap(), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(1_790_000_000, 123_456).unwrap(), "2026-09-21T14:13:20.123456Z");
        assert_eq!(at(4_102_444_800, 7).unwrap(), "2100-01-01T00:00:00.000007Z");
        assert_eq!(at(253_402_300_799, 0).unwrap(), "9999-12-31T23:59:59.000000Z");
        assert_eq!(at(253_402_300_800, 0), None, "year 10000 falls back");
        // Every day of four years around a leap century agrees with counting days by hand.
        let (mut y, mut m, mut d) = (1999u64, 1u64, 1u64);
        for day in 10_592..10_592 + 4 * 366 {
            assert_eq!(civil_from_days(day), (y, m, d), "day {day}");
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            d += 1;
            if d > len {
                (d, m) = (1, m + 1);
            }
            if m > 12 {
                (m, y) = (1, y + 1);
            }
        }
    }

    #[test]
    fn the_current_span_and_its_later_fields_are_included() {
        let got = lines(|| {
            let span = tracing::info_span!("request", request_id = "abc-1", user = tracing::field::Empty);
            let _entered = span.enter();
            tracing::info!("first");
            span.record("user", 7);
            tracing::info!(status = 200, "second");
            let inner = tracing::info_span!("quiet");
            let _inner = inner.enter();
            tracing::info!("third");
        });
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["span"], serde_json::json!({"name": "request", "request_id": "abc-1"}));
        assert_eq!(got[1]["span"], serde_json::json!({"name": "request", "request_id": "abc-1", "user": 7}));
        assert_eq!(got[1]["status"], 200);
        assert_eq!(got[2]["span"], serde_json::json!({"name": "quiet"}));
    }
}
