//! asciicast v2 recordings (<https://docs.asciinema.org/manual/asciicast/v2/>): a JSON
//! header line, then one `[seconds, "o" | "r", data]` line per output chunk or resize.
//! Lines are handed out in chunks to be appended to the database; recording stops at
//! a size cap so that a runaway `yes` cannot fill the disk.

use std::time::Instant;

/// Builds a recording incrementally.
pub struct Recorder {
    started: Instant,
    /// Pending lines: JSON text, always valid UTF-8.
    buf: Vec<u8>,
    total: usize,
    max: usize,
    stopped: bool,
    utf8_carry: Vec<u8>,
}

impl Recorder {
    /// Starts a recording with its header line.
    pub fn new(cols: u16, rows: u16, unix_time: i64, shell: &str, max: usize) -> Recorder {
        let header = serde_json::json!({
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": unix_time,
            "env": { "TERM": "xterm-256color", "SHELL": shell },
        });
        let mut r = Recorder {
            started: Instant::now(),
            buf: Vec::new(),
            total: 0,
            max,
            stopped: false,
            utf8_carry: Vec::new(),
        };
        r.push_line(header.to_string());
        r
    }

    /// Records output. UTF-8 sequences split across chunks are joined first; the event
    /// line is encoded straight into the pending buffer (no intermediate JSON values).
    pub fn output(&mut self, bytes: &[u8]) {
        if self.stopped {
            return;
        }
        let joined;
        let data: &[u8] = if self.utf8_carry.is_empty() {
            bytes
        } else {
            let mut d = std::mem::take(&mut self.utf8_carry);
            d.extend_from_slice(bytes);
            joined = d;
            &joined
        };
        let valid_up_to = match std::str::from_utf8(data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // incomplete tail
            Err(_) => data.len(),                                 // invalid: lossy
        };
        if valid_up_to < data.len() {
            self.utf8_carry.extend_from_slice(&data[valid_up_to..]);
        }
        let text = String::from_utf8_lossy(&data[..valid_up_to]);
        if !text.is_empty() {
            let t = round(self.started.elapsed().as_secs_f64());
            self.push_event(&(t, "o", &*text));
        }
    }

    /// Records a resize.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        if !self.stopped {
            let t = round(self.started.elapsed().as_secs_f64());
            self.push_event(&(t, "r", format!("{cols}x{rows}")));
        }
    }

    /// Appends one event line, or stops the recording when it would pass the cap.
    fn push_event(&mut self, event: &impl serde::Serialize) {
        let start = self.buf.len();
        if serde_json::to_writer(&mut self.buf, event).is_err() {
            self.buf.truncate(start);
            return;
        }
        let len = self.buf.len() - start;
        if self.total + len + 1 > self.max {
            self.buf.truncate(start);
            self.stopped = true;
            return;
        }
        self.total += len + 1;
        self.buf.push(b'\n');
    }

    fn push_line(&mut self, line: String) {
        if self.total + line.len() + 1 > self.max {
            self.stopped = true;
            return;
        }
        self.total += line.len() + 1;
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
    }

    /// Lines recorded since the last call.
    pub fn take_chunk(&mut self) -> Option<String> {
        (!self.buf.is_empty()).then(|| {
            // Only whole JSON lines of valid UTF-8 text are ever appended.
            String::from_utf8(std::mem::take(&mut self.buf)).unwrap_or_default()
        })
    }

    /// Bytes buffered and not yet taken.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }
}

fn round(t: f64) -> f64 {
    (t * 1_000_000.0).round() / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_events_and_split_utf8() {
        let mut r = Recorder::new(80, 24, 1_700_000_000, "/bin/bash", 1 << 20);
        let snow = "☃".as_bytes();
        r.output(&snow[..1]);
        r.output(&snow[1..]);
        r.resize(100, 30);
        let text = r.take_chunk().unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 80);
        assert_eq!(lines[1][1], "o");
        assert_eq!(lines[1][2], "☃");
        assert_eq!(lines[2][2], "100x30");
        assert!(r.take_chunk().is_none());
    }

    #[test]
    fn stops_at_the_cap() {
        let mut r = Recorder::new(80, 24, 0, "sh", 300);
        for _ in 0..100 {
            r.output(b"0123456789");
        }
        assert!(r.take_chunk().unwrap().len() <= 300);
        r.output(b"more");
        assert!(r.take_chunk().is_none());
    }
}
