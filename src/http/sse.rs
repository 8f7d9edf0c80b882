//! Server-sent events (the `text/event-stream` format of the WHATWG HTML standard, §9.2), both
//! ways: an incremental decoder that takes a stream in whatever pieces the socket delivers (an
//! event, a line or a CRLF split across reads) and a writer. The AI gateway translates model
//! providers' streams event by event with them, never holding more than one event.
//!
//! Decoding follows the standard's rules: lines end in CRLF, LF or CR; a leading BOM is skipped;
//! `:` starts a comment; a field's value loses one leading space; `data` lines join with LF;
//! an empty line dispatches the event if it has data; `id` without NUL sets the last event id;
//! `retry` with only digits sets the reconnection time; other fields are ignored; an event left
//! incomplete at the end of the stream is discarded.

/// One dispatched event. `event` is empty for the default type (`message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub event: &'a [u8],
    pub data: &'a [u8],
    /// The last event id seen so far in the stream (it carries over to later events).
    pub id: &'a [u8],
    /// `retry` of this event, when it set one.
    pub retry: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One line or one event's data grew past the decoder's bound.
    #[error("event stream: an event is larger than {0} bytes")]
    TooLarge(usize),
}

/// The decoder's state between reads.
#[derive(Debug)]
pub struct SseDecoder {
    max: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    event: Vec<u8>,
    id: Vec<u8>,
    retry: Option<u64>,
    /// The previous piece ended in CR: an LF at the start of the next one ends no new line.
    after_cr: bool,
    /// Past the start of the stream (where a BOM is skipped).
    started: bool,
    /// The start of the stream while it may still be a BOM.
    bom: Vec<u8>,
}

impl SseDecoder {
    /// A decoder that refuses lines and events longer than `max` bytes.
    pub fn new(max: usize) -> SseDecoder {
        SseDecoder {
            max,
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            id: Vec::new(),
            retry: None,
            after_cr: false,
            started: false,
            bom: Vec::new(),
        }
    }

    /// Feeds the next piece of the stream; `f` gets every event it completes, in order.
    pub fn feed(&mut self, mut input: &[u8], mut f: impl FnMut(Event<'_>)) -> Result<(), SseError> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        if !self.started {
            // A UTF-8 BOM at the very start of the stream, possibly split across pieces: held
            // until it is complete, or fed as data once it turns out not to be one.
            let take = (BOM.len() - self.bom.len()).min(input.len());
            self.bom.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.bom.len() < BOM.len() && BOM.starts_with(&self.bom) {
                return Ok(());
            }
            self.started = true;
            let held = std::mem::take(&mut self.bom);
            if held != BOM {
                self.feed_lines(&held, &mut f)?;
            }
        }
        self.feed_lines(input, &mut f)
    }

    fn feed_lines(
        &mut self,
        mut input: &[u8],
        f: &mut impl FnMut(Event<'_>),
    ) -> Result<(), SseError> {
        if input.is_empty() {
            return Ok(());
        }
        if self.after_cr && input.first() == Some(&b'\n') {
            input = &input[1..];
        }
        self.after_cr = false;
        while !input.is_empty() {
            let Some(end) = input.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.push_line(input)?;
                break;
            };
            self.push_line(&input[..end])?;
            let cr = input[end] == b'\r';
            input = &input[end + 1..];
            if cr {
                match input.first() {
                    Some(b'\n') => input = &input[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.end_line(f)?;
        }
        Ok(())
    }

    fn push_line(&mut self, part: &[u8]) -> Result<(), SseError> {
        if self.line.len() + part.len() > self.max {
            return Err(SseError::TooLarge(self.max));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn end_line(&mut self, f: &mut impl FnMut(Event<'_>)) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(f);
        } else if line[0] != b':' {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match name {
                b"event" => {
                    self.event.clear();
                    self.event.extend_from_slice(value);
                }
                b"data" => {
                    if self.data.len() + value.len() >= self.max {
                        return Err(SseError::TooLarge(self.max));
                    }
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
                b"id" if !value.contains(&0) => {
                    self.id.clear();
                    self.id.extend_from_slice(value);
                }
                b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                    self.retry = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                }
                _ => {}
            }
        }
        // Keep the line buffer's allocation for the next line.
        self.line = line;
        self.line.clear();
        Ok(())
    }

    fn dispatch(&mut self, f: &mut impl FnMut(Event<'_>)) {
        if !self.data.is_empty() {
            if self.data.last() == Some(&b'\n') {
                self.data.pop();
            }
            f(Event {
                event: &self.event,
                data: &self.data,
                id: &self.id,
                retry: self.retry,
            });
        }
        self.data.clear();
        self.event.clear();
        self.retry = None;
    }
}

/// Appends one event: `event:` when it is not the default type, one `data:` line per line of
/// `data` (so a newline in the data cannot end the event early), and the empty line.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &[u8]) {
    if let Some(e) = event.filter(|e| !e.is_empty()) {
        out.extend_from_slice(b"event: ");
        out.extend(e.bytes().filter(|&b| b != b'\n' && b != b'\r'));
        out.push(b'\n');
    }
    let mut rest = data;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end.unwrap_or(rest.len())]);
        out.push(b'\n');
        match end {
            None => break,
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Owned {
        event: String,
        data: String,
        id: String,
        retry: Option<u64>,
    }

    fn all(pieces: &[&[u8]]) -> Vec<Owned> {
        let mut d = SseDecoder::new(1 << 16);
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, |e| {
                out.push(Owned {
                    event: String::from_utf8_lossy(e.event).into(),
                    data: String::from_utf8_lossy(e.data).into(),
                    id: String::from_utf8_lossy(e.id).into(),
                    retry: e.retry,
                })
            })
            .unwrap();
        }
        out
    }

    fn ev(event: &str, data: &str, id: &str) -> Owned {
        Owned {
            event: event.into(),
            data: data.into(),
            id: id.into(),
            retry: None,
        }
    }

    #[test]
    fn the_standards_examples() {
        // HTML §9.2.6.
        assert_eq!(
            all(&[b"data: YHOO\ndata: +2\ndata: 10\n\n"]),
            vec![ev("", "YHOO\n+2\n10", "")]
        );
        assert_eq!(
            all(&[b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"]),
            vec![ev("", "first event", "1"), ev("", "second event", ""), ev("", " third event", "")]
        );
        assert_eq!(
            all(&[b"data\n\ndata\ndata\n\ndata:"]),
            vec![ev("", "", ""), ev("", "\n", "")]
        );
        assert_eq!(
            all(&[b"data:test\n\ndata: test\n\n"]),
            vec![ev("", "test", ""), ev("", "test", "")]
        );
    }

    #[test]
    fn line_endings_and_pieces() {
        let whole = b"\xEF\xBB\xBFevent: delta\r\ndata: a\rdata: b\r\n\r\nretry: 50\nevent: done\ndata: [DONE]\n\n";
        let want = all(&[whole]);
        assert_eq!(want.len(), 2);
        assert_eq!(want[0], ev("delta", "a\nb", ""));
        assert_eq!(want[1].retry, Some(50));
        assert_eq!(want[1].data, "[DONE]");
        // Any split gives the same events.
        for cut in 0..whole.len() {
            for cut2 in cut..whole.len() {
                assert_eq!(
                    all(&[&whole[..cut], &whole[cut..cut2], &whole[cut2..]]),
                    want,
                    "{cut} {cut2}"
                );
            }
        }
    }

    #[test]
    fn a_bom_prefix_that_is_not_a_bom_is_data() {
        let want = all(&[b"\xEFdata: x\n\n"]);
        assert_eq!(all(&[b"\xEF", b"data: x\n\n"]), want);
        assert_eq!(
            all(&[b"\xEF\xBB", b"\xBFdata: y\n\n"]),
            vec![ev("", "y", "")]
        );
    }

    #[test]
    fn incomplete_event_at_the_end_is_not_dispatched_and_bounds_hold() {
        assert!(all(&[b"data: half"]).is_empty());
        let mut d = SseDecoder::new(8);
        assert_eq!(
            d.feed(b"data: 0123456789", |_| {}),
            Err(SseError::TooLarge(8))
        );
    }

    #[test]
    fn written_events_read_back() {
        let mut out = Vec::new();
        write_event(
            &mut out,
            Some("message_delta"),
            b"{\"a\":1}\nsecond\r\nthird",
        );
        write_event(&mut out, None, b"[DONE]");
        let got = all(&[&out]);
        assert_eq!(
            got,
            vec![
                ev("message_delta", "{\"a\":1}\nsecond\nthird", ""),
                ev("", "[DONE]", "")
            ]
        );
    }
}
