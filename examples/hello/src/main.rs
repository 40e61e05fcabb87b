//! The `hello` example function for the `exec` contract.
//!
//! Reads a JSON object such as `{"name":"Ann"}` on stdin and prints `Hello Ann!`.
//! With no input (or no `name`), it prints `Hello World!`.

use std::io::{self, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(err) = io::stdin().read_to_end(&mut input) {
        eprintln!("hello: cannot read stdin: {err}");
        return ExitCode::FAILURE;
    }
    let name = if input.iter().all(u8::is_ascii_whitespace) {
        "World".to_string()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&input) {
            Ok(value) => value
                .get("name")
                .and_then(serde_json::Value::as_str)
                .filter(|name| !name.is_empty())
                .unwrap_or("World")
                .to_string(),
            Err(err) => {
                eprintln!("hello: input is not JSON: {err}");
                return ExitCode::from(2);
            }
        }
    };
    eprintln!("hello: greeting {name}");
    if writeln!(io::stdout(), "Hello {name}!").is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
