//! The editor's messages on standard input and output, each read only once its announced
//! size is known to be bounded: a `Content-Length` of terabytes would otherwise be
//! allocated before a byte of it arrived, and the server abort.

use lsp_server::{Connection, Message};
use std::io::{self, BufRead, Read, Write};
use std::thread::JoinHandle;

/// The largest message taken: a whole runbook (at most 8 MiB of text) escaped as JSON,
/// with room to spare.
pub(super) const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The threads that carry the messages.
pub(super) struct Io {
    reader: JoinHandle<io::Result<()>>,
    writer: JoinHandle<io::Result<()>>,
}

impl Io {
    /// Waits for both threads; the reader's error first, the better message.
    pub(super) fn join(self) -> io::Result<()> {
        let gone = |_| io::Error::other("the thread ended abnormally");
        let read = self.reader.join().map_err(gone)?;
        let written = self.writer.join().map_err(gone)?;
        read.and(written)
    }
}

/// A connection to the editor over standard input and output.
pub(super) fn stdio() -> (Connection, Io) {
    let (server, editor) = Connection::memory();
    let Connection {
        sender: to_server,
        receiver: from_server,
    } = editor;
    let reader = std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        while let Some(message) = read(&mut input)? {
            let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
            if to_server.send(message).is_err() || exit {
                break;
            }
        }
        Ok(())
    });
    let writer = std::thread::spawn(move || {
        let stdout = io::stdout();
        let mut output = stdout.lock();
        for message in from_server {
            message.write(&mut output)?;
            output.flush()?;
        }
        Ok(())
    });
    (server, Io { reader, writer })
}

/// Reads one message (`None` at the end of the input), refusing one announced larger than
/// [`MAX_MESSAGE`] before reading its body.
pub(super) fn read(input: &mut impl BufRead) -> io::Result<Option<Message>> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut size = None;
    let mut line = String::new();
    loop {
        line.clear();
        // A header line is short: one without its end within a few KiB is not a header.
        if input.by_ref().take(4096).read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let Some(header) = line.strip_suffix("\r\n") else {
            return Err(bad(format!("malformed header: {line:?}")));
        };
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(": ")
            .ok_or_else(|| bad(format!("malformed header: {header:?}")))?;
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| bad(format!("a Content-Length that is not a size: {value:?}")))?;
            if n > MAX_MESSAGE {
                return Err(bad(format!(
                    "a message of {n} bytes is announced, more than the {} MiB this server takes",
                    MAX_MESSAGE / (1024 * 1024)
                )));
            }
            size = Some(n);
        }
    }
    let size = size.ok_or_else(|| bad("a message without a Content-Length".into()))?;
    let mut framed = format!("Content-Length: {size}\r\n\r\n").into_bytes();
    let start = framed.len();
    framed.resize(start + size, 0);
    input.read_exact(&mut framed[start..])?;
    Message::read(&mut io::Cursor::new(framed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_announced_message_is_refused_before_its_body_is_read() {
        let mut input = io::Cursor::new(b"Content-Length: 99999999999999\r\n\r\n{}".to_vec());
        let e = read(&mut input).unwrap_err();
        assert!(e.to_string().contains("more than the 64 MiB"), "{e}");
    }

    #[test]
    fn messages_are_read_in_turn_until_the_end() {
        let body = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let text = format!("Content-Length: {}\r\n\r\n{body}", body.len()).repeat(2);
        let mut input = io::Cursor::new(text.into_bytes());
        for _ in 0..2 {
            let m = read(&mut input).unwrap().unwrap();
            assert!(matches!(m, Message::Notification(n) if n.method == "exit"));
        }
        assert!(read(&mut input).unwrap().is_none());
        let mut short = io::Cursor::new(b"Content-Length: 10\r\n\r\n{}".to_vec());
        assert!(read(&mut short).is_err(), "a body shorter than announced");
    }
}
