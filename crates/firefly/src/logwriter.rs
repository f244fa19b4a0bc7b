//! Where log lines go: a shared in-memory buffer that a flusher thread writes out every
//! [`FLUSH_EVERY`], so logging a line (one per request) is a lock and a copy — no
//! `write(2)` and no thread wake-up on the request path. Nothing is dropped: a line that
//! would grow the buffer past [`MAX_BUFFERED`] makes its writer flush first. Lines reach
//! the output in the order they were logged; [`LogGuard`] flushes the rest when dropped.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
pub const MAX_BUFFERED: usize = 1024 * 1024;

struct Shared<W> {
    pending: Mutex<Vec<u8>>,
    /// The output; held while a chunk is taken from `pending` and written, which keeps
    /// chunks in order.
    out: Mutex<W>,
    stop: Mutex<bool>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<W: Write> Shared<W> {
    fn flush(&self) -> io::Result<()> {
        let mut out = lock(&self.out);
        let chunk = std::mem::take(&mut *lock(&self.pending));
        if chunk.is_empty() {
            return Ok(());
        }
        out.write_all(&chunk)?;
        out.flush()
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        {
            let mut pending = lock(&self.pending);
            if pending.len() + line.len() <= MAX_BUFFERED {
                pending.extend_from_slice(line);
                return Ok(());
            }
        }
        // Full: this writer pays for the write, then its line waits for the next flush.
        self.flush()?;
        lock(&self.pending).extend_from_slice(line);
        Ok(())
    }
}

/// The `MakeWriter` for `tracing_subscriber::fmt`.
pub struct BufferedLog<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for BufferedLog<W> {
    fn clone(&self) -> Self {
        BufferedLog { shared: self.shared.clone() }
    }
}

/// Stops the flusher and writes out what is left.
pub struct LogGuard<W: Write> {
    shared: Arc<Shared<W>>,
    flusher: Option<JoinHandle<()>>,
}

impl<W: Write + Send + 'static> BufferedLog<W> {
    pub fn new(out: W) -> (BufferedLog<W>, LogGuard<W>) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(out),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("firefly-log".into())
                .spawn(move || {
                    let mut stop = lock(&shared.stop);
                    while !*stop {
                        stop = shared.wake.wait_timeout(stop, FLUSH_EVERY).unwrap_or_else(|e| e.into_inner()).0;
                        // A failing stderr has nowhere to be reported; lines stay queued.
                        let _ = shared.flush();
                    }
                })
                .ok()
        };
        (BufferedLog { shared: shared.clone() }, LogGuard { shared, flusher })
    }
}

impl<W: Write> Drop for LogGuard<W> {
    fn drop(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        let _ = self.shared.flush();
    }
}

/// One event's writer: the formatter writes the whole line at once.
pub struct LineWriter<'a, W> {
    shared: &'a Shared<W>,
}

impl<W: Write> Write for LineWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BufferedLog<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { shared: &self.shared }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records every write it gets.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn text(r: &Recorder) -> String {
        String::from_utf8(lock(&r.0).concat()).unwrap()
    }

    #[test]
    fn every_line_arrives_in_order_per_thread_and_the_guard_flushes_the_rest() {
        let out = Recorder::default();
        let (log, guard) = BufferedLog::new(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        // One write per line, as the formatter does.
                        log.make_writer().write_all(format!("t{t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let all = text(&out);
        for t in 0..4 {
            let mine: Vec<&str> = all.lines().filter(|l| l.starts_with(&format!("t{t} "))).collect();
            let expected: Vec<String> = (0..2_000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, expected, "thread {t}'s lines");
        }
        assert_eq!(all.lines().count(), 8_000);
        // Batched: far fewer writes than lines.
        assert!(lock(&out.0).len() < 8_000, "{} writes for 8000 lines", lock(&out.0).len());
    }

    #[test]
    fn lines_are_written_within_the_flush_interval_without_a_guard_drop() {
        let out = Recorder::default();
        let (log, _guard) = BufferedLog::new(out.clone());
        log.make_writer().write_all(b"hello\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while text(&out).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the flusher never wrote the line");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&out), "hello\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_logging_thread_and_nothing_is_lost() {
        let out = Recorder::default();
        let (log, guard) = BufferedLog::new(out.clone());
        let line = "x".repeat(1000) + "\n";
        let n = 3 * MAX_BUFFERED / line.len();
        for _ in 0..n {
            log.make_writer().write_all(line.as_bytes()).unwrap();
        }
        drop(guard);
        let all = text(&out);
        assert_eq!(all.len(), n * line.len());
        assert!(all.lines().all(|l| l.len() == 1000));
    }
}
