//! The `uppercase` example function for the `exec` contract: text in, upper case out.
//!
//! Streams stdin to stdout in chunks, so it handles inputs of any size in constant memory.
//! Non-ASCII UTF-8 is upper-cased too; bytes that are not valid UTF-8 pass through unchanged.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut output = io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let upper = match std::str::from_utf8(&line) {
                    Ok(text) => text.to_uppercase().into_bytes(),
                    Err(_) => line.to_ascii_uppercase(),
                };
                if output.write_all(&upper).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Err(err) => {
                eprintln!("uppercase: cannot read stdin: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if output.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
