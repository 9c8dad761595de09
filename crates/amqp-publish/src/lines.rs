//! `-l` input: stdin cut into messages as the C tool's `fgets` loop cuts it.

use std::io::{BufRead, BufReader, Read};

/// The longest message -l makes from one line: the C tool reads lines with
/// `fgets(buf, 32768)`, so longer lines arrive as several messages of at most this size.
pub const MAX_LINE_PIECE: usize = 32_767;

/// stdin read buffer: large reads keep the per-line cost down when lines are short.
pub(crate) const STDIN_BUFFER: usize = 1 << 20;

/// What `each_line` hands on.
pub enum Input<'a> {
    /// The body of one message.
    Line(&'a [u8]),
    /// No more input is buffered: the next line may take a while.
    Idle,
}

/// The body the C tool's `-l` publishes for one piece: `strlen` of the buffer, so a NUL ends it.
fn cut_at_nul(piece: &[u8]) -> &[u8] {
    match memchr::memchr(0, piece) {
        Some(i) => &piece[..i],
        None => piece,
    }
}

/// stdin cut into `-l` messages. The part of a line read so far is kept here, not in a call,
/// so that a caller whose `on_input` failed (amqp-publish --reconnect, after a lost connection)
/// can call `each_line` again and lose nothing.
pub struct Lines<R> {
    reader: BufReader<R>,
    pending: Vec<u8>,
}

impl<R: Read> Lines<R> {
    pub fn new(reader: BufReader<R>) -> Lines<R> {
        Lines {
            reader,
            pending: Vec::new(),
        }
    }

    /// Feeds `on_input` each message `-l` makes, as soon as its line is complete: lines with
    /// their '\n', pieces of at most `MAX_LINE_PIECE` bytes, a last line without '\n' as it
    /// is, each cut at its first NUL. Complete lines are handed out of the read buffer without
    /// copying. `Input::Idle` comes whenever the next read may wait for input, so that what the
    /// lines so far produced can be sent first. A line is handed on once, even when
    /// `on_input` fails with it; after any failure, the next call goes on where this one
    /// stopped.
    pub fn each_line<E>(
        &mut self,
        mut on_input: impl FnMut(Input<'_>) -> std::result::Result<(), E>,
        on_read_error: impl Fn(std::io::Error) -> E,
    ) -> std::result::Result<(), E> {
        let Lines { reader, pending } = self;
        loop {
            if reader.buffer().is_empty() {
                on_input(Input::Idle)?;
            }
            let buf = match reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(on_read_error(e)),
            };
            if buf.is_empty() {
                if pending.is_empty() {
                    return Ok(());
                }
                let handed = on_input(Input::Line(cut_at_nul(pending)));
                pending.clear();
                return handed;
            }
            let room = MAX_LINE_PIECE - pending.len();
            let window = &buf[..buf.len().min(room)];
            let used = match memchr::memchr(b'\n', window) {
                Some(newline) => Some(newline + 1),
                None if window.len() == room => Some(room),
                None => None,
            };
            match used {
                Some(end) if pending.is_empty() => {
                    let handed = on_input(Input::Line(cut_at_nul(&buf[..end])));
                    reader.consume(end);
                    handed?;
                }
                Some(end) => {
                    pending.extend_from_slice(&buf[..end]);
                    reader.consume(end);
                    let handed = on_input(Input::Line(cut_at_nul(pending)));
                    pending.clear();
                    handed?;
                }
                None => {
                    let n = window.len();
                    pending.extend_from_slice(window);
                    reader.consume(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], capacity: usize) -> Vec<Vec<u8>> {
        let mut reader = Lines::new(std::io::BufReader::with_capacity(capacity, input));
        let mut out = Vec::new();
        reader
            .each_line(
                |input| {
                    if let Input::Line(l) = input {
                        out.push(l.to_vec());
                    }
                    Ok::<(), std::io::Error>(())
                },
                |e| e,
            )
            .unwrap();
        out
    }

    #[test]
    fn lines_like_fgets() {
        for cap in [1, 3, 8192] {
            assert_eq!(
                lines(b"l1\nl2\n\nl4 no newline", cap),
                vec![
                    b"l1\n".to_vec(),
                    b"l2\n".to_vec(),
                    b"\n".to_vec(),
                    b"l4 no newline".to_vec()
                ]
            );
            assert_eq!(
                lines(b"a\r\nb\n", cap),
                vec![b"a\r\n".to_vec(), b"b\n".to_vec()]
            );
            assert_eq!(
                lines(b"x\0y\nz\n\0abc\n", cap),
                vec![b"x".to_vec(), b"z\n".to_vec(), b"".to_vec()]
            );
            assert!(lines(b"", cap).is_empty());
        }
    }

    #[test]
    fn reading_goes_on_after_a_refused_line() {
        for cap in [1, 3, 8192] {
            let mut reader = Lines::new(std::io::BufReader::with_capacity(
                cap,
                &b"l1\nl2\nl3\nl4"[..],
            ));
            let mut out = Vec::new();
            let mut refuse = 2;
            loop {
                let result = reader.each_line(
                    |input| {
                        if let Input::Line(l) = input {
                            out.push(l.to_vec());
                            refuse -= 1;
                            if refuse == 0 {
                                return Err(());
                            }
                        }
                        Ok(())
                    },
                    |_| (),
                );
                if result.is_ok() {
                    break;
                }
            }
            // Each line handed on once, the refused ones included.
            assert_eq!(
                out,
                [&b"l1\n"[..], b"l2\n", b"l3\n", b"l4"],
                "capacity {cap}"
            );
        }
    }

    #[test]
    fn a_line_read_in_part_survives_a_refused_idle() {
        // The input arrives in 3-byte reads, so "partial\n" is put together across several;
        // the first Idle after "par" is refused, as a lost connection refuses a flush.
        let mut reader = Lines::new(std::io::BufReader::with_capacity(
            3,
            &b"l1\npartial\nend\n"[..],
        ));
        let mut out = Vec::new();
        let mut idles = 0;
        let mut refused = 0;
        loop {
            let result = reader.each_line(
                |input| match input {
                    Input::Line(l) => {
                        out.push(l.to_vec());
                        Ok(())
                    }
                    Input::Idle => {
                        idles += 1;
                        if idles == 3 {
                            refused += 1;
                            return Err(());
                        }
                        Ok(())
                    }
                },
                |_| (),
            );
            if result.is_ok() {
                break;
            }
        }
        assert_eq!(refused, 1);
        assert_eq!(out, [&b"l1\n"[..], b"partial\n", b"end\n"]);
    }

    #[test]
    fn long_lines_are_split() {
        for cap in [7, 4096, 1 << 20] {
            let mut input = vec![b'a'; 40_000];
            input.push(b'\n');
            let got = lines(&input, cap);
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![32_767, 7_234]
            );
            let mut exact = vec![b'b'; 32_767];
            exact.push(b'\n');
            exact.extend_from_slice(b"c");
            let got = lines(&exact, cap);
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![32_767, 1, 1]
            );
        }
    }
}
