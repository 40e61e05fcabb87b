//! Output comes in chunks that do not follow its lines: [`LineSplitter`] cuts it into
//! lines, keeping a partial line until its end comes (or it grows too long).

/// The longest line kept whole: a longer one is cut in pieces of this size.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

/// Cuts one stream's chunks into lines.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// The lines `chunk` completes, without their ends of line (`\n` or `\r\n`).
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.take(&rest[..end], &mut lines);
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
            rest = &rest[end + 1..];
        }
        self.take(rest, &mut lines);
        lines
    }

    /// What is left once the stream has ended: its last line, if it had no end of line.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let line = std::mem::take(&mut self.partial);
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    /// Adds `bytes` to the partial line, cutting off pieces that reach the longest line.
    fn take(&mut self, mut bytes: &[u8], lines: &mut Vec<String>) {
        while self.partial.len() + bytes.len() >= MAX_LINE_BYTES {
            let room = MAX_LINE_BYTES - self.partial.len();
            self.partial.extend_from_slice(&bytes[..room]);
            let piece = std::mem::take(&mut self.partial);
            lines.push(String::from_utf8_lossy(&piece).into_owned());
            bytes = &bytes[room..];
        }
        self.partial.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"hel"), Vec::<String>::new());
        assert_eq!(s.push(b"lo\r\nwor"), vec!["hello"]);
        assert_eq!(s.push(b"ld\n\nlast"), vec!["world", ""]);
        assert_eq!(s.finish(), Some("last".to_string()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut s = LineSplitter::default();
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 3];
        let lines = s.push(&long);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE_BYTES));
        assert_eq!(s.push(b"\n"), vec!["xxx"]);
    }
}
