//! skiff-init: the first process of every `exec` container that skiff prepares ahead of a call.
//!
//! skiff creates and starts a function's container before a call arrives, with this program
//! (bind-mounted read-only) as its entrypoint and the image's own entrypoint and command as
//! arguments. It waits on stdin for one frame that carries the call's metadata:
//!
//! ```text
//! u32 little-endian length N, then N bytes of NUL-separated KEY=VALUE entries
//! ```
//!
//! It adds those entries to the environment and replaces itself (execve) with the function's
//! command, which inherits stdin (the rest of the stream is the request body), stdout and
//! stderr. The function thus runs as PID 1 of a fresh container, exactly as if the container
//! had been started for the call, but the container start is paid before the call.
//!
//! This file is compiled by `build.rs` on its own, statically linked, and embedded in skiff.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::mem::ManuallyDrop;
use std::os::unix::io::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

/// The largest metadata frame accepted (headers of a request are far smaller).
const MAX_FRAME: usize = 1 << 20;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("skiff-init: no command to run");
        exit(127);
    };
    // Unbuffered reads of fd 0, so that no byte of the request body is consumed here.
    // SAFETY: fd 0 is open for the life of the process and is never closed through this File.
    let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let mut len = [0u8; 4];
    match stdin.read_exact(&mut len) {
        Ok(()) => {}
        // The container was discarded without a call: nothing to do.
        Err(err) if err.kind() == ErrorKind::UnexpectedEof => exit(0),
        Err(err) => {
            eprintln!("skiff-init: cannot read call metadata: {err}");
            exit(126);
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        eprintln!("skiff-init: call metadata too large ({len} bytes)");
        exit(126);
    }
    let mut frame = vec![0u8; len];
    if let Err(err) = stdin.read_exact(&mut frame) {
        eprintln!("skiff-init: cannot read call metadata: {err}");
        exit(126);
    }
    let mut command = Command::new(&program);
    command.args(args);
    for entry in frame.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        if let Some((key, value)) = entry.split_once('=') {
            command.env(key, value);
        }
    }
    let err = command.exec();
    eprintln!("skiff-init: cannot run {}: {err}", program.to_string_lossy());
    exit(127);
}
