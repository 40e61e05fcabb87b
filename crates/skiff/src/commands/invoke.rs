//! `skiff invoke`: calls a function and writes its response, byte for byte.

use crate::client::{ApiClient, ClientError};
use crate::output;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `skiff invoke`.
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The function to call
    pub name: String,
    /// Request body, as given
    #[arg(long, short = 'd', value_name = "STRING", conflicts_with = "file")]
    pub data: Option<String>,
    /// Read the request body from this file (`-` for stdin)
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Queue the call and print its id at once; follow it with `skiff calls get ID`
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// With --async: an http:// URL that receives the call's result once it is final
    #[arg(long, value_name = "URL", requires = "asynchronous")]
    pub callback: Option<String>,
}

/// Where the request body comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    /// The `--data` text.
    Data(String),
    /// A file.
    File(PathBuf),
    /// Standard input.
    Stdin,
    /// No body.
    Empty,
}

/// `--data`, else `--file` (`-` meaning stdin), else stdin when it is not a terminal, else
/// nothing.
pub fn body_source(
    data: Option<String>,
    file: Option<PathBuf>,
    stdin_is_terminal: bool,
) -> BodySource {
    match (data, file) {
        (Some(data), _) => BodySource::Data(data),
        (None, Some(path)) if path.as_os_str() == "-" => BodySource::Stdin,
        (None, Some(path)) => BodySource::File(path),
        (None, None) if stdin_is_terminal => BodySource::Empty,
        (None, None) => BodySource::Stdin,
    }
}

/// Reads the body from `source`; `stdin` is read for [`BodySource::Stdin`].
pub fn read_body(source: BodySource, mut stdin: impl Read) -> anyhow::Result<Vec<u8>> {
    match source {
        BodySource::Data(data) => Ok(data.into_bytes()),
        BodySource::File(path) => std::fs::read(&path)
            .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display())),
        BodySource::Stdin => {
            let mut body = Vec::new();
            stdin
                .read_to_end(&mut body)
                .map_err(|err| anyhow::anyhow!("cannot read the request body from stdin: {err}"))?;
            Ok(body)
        }
        BodySource::Empty => Ok(Vec::new()),
    }
}

/// The line `skiff invoke` prints on stderr for a failed call.
pub fn failure_line(message: &str, code: &str, call_id: Option<&str>) -> String {
    let message = output::one_line(message);
    match call_id {
        Some(id) => format!("error: {message} ({code}, call {id})"),
        None => format!("error: {message} ({code})"),
    }
}

/// Runs `skiff invoke`.
pub async fn run(client: &ApiClient, args: InvokeArgs, json: bool) -> anyhow::Result<ExitCode> {
    let source = body_source(args.data, args.file, std::io::stdin().is_terminal());
    let body = read_body(source, std::io::stdin().lock())?;
    if args.asynchronous {
        let id = client
            .invoke_async(&args.name, body, args.callback.as_deref())
            .await?;
        if json {
            output::print_json(&serde_json::json!({"call_id": id, "status": "queued"}))?;
        } else {
            output::print_text(&format!("{id}\n"))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match client.invoke(&args.name, body).await {
        Ok(invoked) => {
            if json {
                let mut object = serde_json::Map::new();
                object.insert("call_id".into(), invoked.call_id.into());
                object.insert("cold".into(), invoked.cold.into());
                output::insert_bytes(&mut object, "output", &invoked.output);
                output::print_json(&object)?;
            } else {
                output::print_raw(&invoked.output)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ ClientError::Api { .. }) => {
            if json {
                output::print_json(&err.to_json())?;
            } else if let ClientError::Api {
                code,
                message,
                call_id,
                ..
            } = &err
            {
                eprintln!("{}", failure_line(message, code, call_id.as_deref()));
            }
            Ok(ExitCode::from(1))
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_comes_from_data_then_file_then_a_piped_stdin() {
        let file = Some(PathBuf::from("body.bin"));
        assert_eq!(
            body_source(Some("x".into()), None, true),
            BodySource::Data("x".into())
        );
        assert_eq!(
            body_source(None, file.clone(), false),
            BodySource::File(PathBuf::from("body.bin"))
        );
        assert_eq!(
            body_source(None, Some(PathBuf::from("-")), true),
            BodySource::Stdin
        );
        assert_eq!(body_source(None, None, false), BodySource::Stdin);
        assert_eq!(body_source(None, None, true), BodySource::Empty);
    }

    #[test]
    fn bodies_are_read_byte_for_byte() {
        let stdin: &[u8] = &[0, 255, 10];
        assert_eq!(
            read_body(BodySource::Stdin, stdin).expect("stdin"),
            vec![0, 255, 10]
        );
        assert_eq!(
            read_body(BodySource::Data("hé".into()), stdin).expect("data"),
            "hé".as_bytes()
        );
        assert!(read_body(BodySource::Empty, stdin)
            .expect("empty")
            .is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("body.bin");
        std::fs::write(&path, [1, 2, 3]).expect("write");
        assert_eq!(
            read_body(BodySource::File(path), stdin).expect("file"),
            vec![1, 2, 3]
        );
        let err =
            read_body(BodySource::File(dir.path().join("missing")), stdin).expect_err("missing");
        assert!(err.to_string().starts_with("cannot read"), "{err}");
    }

    #[test]
    fn data_and_file_exclude_each_other() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: InvokeArgs,
        }
        assert!(Cli::try_parse_from(["invoke", "f", "--data", "x", "--file", "y"]).is_err());
    }

    #[test]
    fn failures_print_one_line_with_the_call() {
        assert_eq!(
            failure_line(
                "the function exited with status 1: boom\nat x",
                "function_error",
                Some("0190")
            ),
            "error: the function exited with status 1: boom | at x (function_error, call 0190)"
        );
        assert_eq!(
            failure_line("function `nope` does not exist", "function_not_found", None),
            "error: function `nope` does not exist (function_not_found)"
        );
    }
}
