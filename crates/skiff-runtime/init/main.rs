//! skiff-init: the first process of every `exec` container that skiff prepares ahead of a call.
//!
//! skiff creates and starts a function's container before a call arrives, with this program
//! (bind-mounted read-only) as its entrypoint and the image's own entrypoint and command as
//! arguments. It then takes exactly one call, in one of two modes.
//!
//! **Stdin mode** (the default). It waits on stdin for one frame that carries the call's
//! metadata:
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
//! **Listen mode** (`SKIFF_INIT_LISTEN=<port>`), for engines whose API cannot attach to a
//! task's stdio (Docker Swarm). It listens on TCP `0.0.0.0:<port>`, accepts one connection,
//! reads the same frame from it and runs the function as its child, with the frame's entries
//! added to the environment and `SKIFF_INIT_LISTEN` removed. The rest of the connection, up to
//! the peer's half-close, is the function's stdin; its stdout and stderr go back over the
//! connection as frames, then its exit status. The wire format is documented once, in
//! `skiff-runtime/src/init_link.rs` (skiff's side of the connection). skiff-init stays PID 1:
//! it reaps orphans, forwards SIGTERM and SIGINT to the function, and kills the function if
//! the connection is lost.
//!
//! Errors print one line `skiff-init: ...` on stderr (in listen mode also to the peer) and
//! exit 127 if the function cannot be run, 126 otherwise.
//!
//! This file is compiled by `build.rs` on its own (std only), statically linked, and embedded
//! in skiff.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::raw::c_int;
use std::os::unix::io::FromRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{exit, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The largest metadata frame accepted (headers of a request are far smaller).
const MAX_FRAME: usize = 1 << 20;
/// The variable that selects listen mode and names its port.
const LISTEN_VAR: &str = "SKIFF_INIT_LISTEN";
/// Output frame kinds (Docker's stream framing) and the exit frame.
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const EXIT: u8 = 3;
/// Largest chunk of output sent in one frame.
const CHUNK: usize = 32 * 1024;
/// How often an empty frame is sent while the function runs, so that a write notices a
/// connection the peer has dropped.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long, after the exit frame, the rest of the request body is drained before exiting
/// (closing with unread input would reset the connection and could lose the exit frame).
const LINGER: Duration = Duration::from_secs(5);

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        fail(127, "no command to run");
    };
    let args: Vec<OsString> = args.collect();
    match std::env::var_os(LISTEN_VAR) {
        None => stdin_mode(&program, &args),
        Some(port) => listen_mode(&port, &program, &args),
    }
}

/// Prints one error line and exits with `code`.
fn fail(code: i32, message: &str) -> ! {
    eprintln!("skiff-init: {message}");
    exit(code);
}

/// Reads the metadata frame; `None` if the stream ends before it starts (no call came).
fn read_frame(input: &mut impl Read) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(format!("cannot read call metadata: {err}")),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(format!("call metadata too large ({len} bytes)"));
    }
    let mut frame = vec![0u8; len];
    input
        .read_exact(&mut frame)
        .map_err(|err| format!("cannot read call metadata: {err}"))?;
    Ok(Some(frame))
}

/// The function's command, with the frame's entries added to its environment.
fn command(program: &OsStr, args: &[OsString], frame: &[u8]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    for entry in frame.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        if let Some((key, value)) = entry.split_once('=') {
            command.env(key, value);
        }
    }
    command
}

/// Stdin mode: read the frame from fd 0, then become the function.
fn stdin_mode(program: &OsStr, args: &[OsString]) -> ! {
    // Unbuffered reads of fd 0, so that no byte of the request body is consumed here.
    // SAFETY: fd 0 is open for the life of the process and is never closed through this File.
    let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let frame = match read_frame(&mut *stdin) {
        Ok(Some(frame)) => frame,
        // The container was discarded without a call: nothing to do.
        Ok(None) => exit(0),
        Err(message) => fail(126, &message),
    };
    let err = command(program, args, &frame).exec();
    fail(
        127,
        &format!("cannot run {}: {err}", program.to_string_lossy()),
    );
}

// The few libc functions std does not wrap (std links libc already).
extern "C" {
    /// Installs a signal handler (glibc and musl: persistent, with SA_RESTART).
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn kill(pid: i32, sig: c_int) -> c_int;
    fn waitpid(pid: i32, status: *mut c_int, options: c_int) -> i32;
    fn _exit(status: c_int) -> !;
}
const SIGINT: c_int = 2;
const SIGKILL: c_int = 9;
const SIGTERM: c_int = 15;

/// The function's pid once spawned (0 before, and again once reaped).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Set just before the function is spawned: from then on a signal is not a reason to exit.
static SPAWNING: AtomicBool = AtomicBool::new(false);
/// A signal that arrived while the function was being spawned, forwarded once it runs.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// SIGTERM/SIGINT: forwarded to the function; before a call arrives, skiff-init just exits
/// (no call was taken, as when stdin mode's stdin closes). Async-signal-safe: atomics and
/// syscalls only.
extern "C" fn on_signal(sig: c_int) {
    let pid = CHILD.load(SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { kill(pid, sig) };
    } else if !SPAWNING.load(SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { _exit(0) };
    } else {
        PENDING.store(sig, SeqCst);
    }
}

/// Kills the function and what it started in its process group (as the kernel would when a
/// container's PID 1 exits).
fn kill_function() {
    let pid = CHILD.load(SeqCst);
    if pid > 0 {
        // SAFETY: plain syscall; the group id is the function's pid (see `process_group`).
        unsafe { kill(-pid, SIGKILL) };
    }
}

/// The connection's write half, shared by the threads that send frames.
struct Sink(Mutex<SinkState>);

struct SinkState {
    stream: TcpStream,
    /// Why the connection was lost, if it was (nothing more is sent then).
    lost: Option<String>,
    /// The exit frame was sent.
    done: bool,
}

impl Sink {
    fn new(stream: TcpStream) -> Arc<Sink> {
        let (lost, done) = (None, false);
        Arc::new(Sink(Mutex::new(SinkState { stream, lost, done })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends one frame; false once the connection is lost or the call is over.
    fn send(&self, kind: u8, data: &[u8]) -> bool {
        self.lock().send(kind, data)
    }

    /// Records that the connection broke while reading from it, and kills the function.
    fn lose(&self, why: String) {
        self.lock().lost.get_or_insert(why);
        kill_function();
    }

    /// Sends the exit frame, last, and shuts down the write side; why not, if the connection
    /// was lost.
    fn finish(&self, code: i32) -> Result<(), String> {
        let mut state = self.lock();
        if !state.send(EXIT, &code.to_be_bytes()) {
            return Err(state.lost.clone().unwrap_or_default());
        }
        state.done = true;
        let _ = state.stream.shutdown(Shutdown::Write);
        Ok(())
    }
}

impl SinkState {
    fn send(&mut self, kind: u8, data: &[u8]) -> bool {
        if self.lost.is_some() || self.done {
            return false;
        }
        let len = (data.len() as u32).to_be_bytes();
        let mut frame = Vec::with_capacity(8 + data.len());
        frame.extend_from_slice(&[kind, 0, 0, 0]);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(data);
        match self.stream.write_all(&frame) {
            Ok(()) => true,
            Err(err) => {
                self.lost = Some(err.to_string());
                kill_function();
                false
            }
        }
    }
}

/// Feeds the rest of the connection to the function's stdin until the peer half-closes, then
/// closes it. Once the function stops reading, the rest is drained and dropped. Reports on
/// `eof` when the connection's input is used up.
fn feed_stdin(
    mut conn: TcpStream,
    mut pipe: Option<ChildStdin>,
    sink: &Sink,
    eof: mpsc::Sender<()>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // A function may exit without reading its input (EPIPE): not an error.
                if pipe
                    .as_mut()
                    .is_some_and(|p| p.write_all(&buf[..n]).is_err())
                {
                    pipe = None;
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => {
                sink.lose(err.to_string());
                break;
            }
        }
    }
    drop(pipe);
    let _ = eof.send(());
}

/// Forwards one of the function's output pipes as frames of `kind`, until it closes.
fn forward(mut pipe: impl Read, kind: u8, sink: &Sink) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if sink.send(kind, &buf[..n]) => {}
            Ok(_) => return,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn spawn_forward(
    pipe: Option<impl Read + Send + 'static>,
    kind: u8,
    sink: &Arc<Sink>,
) -> Option<thread::JoinHandle<()>> {
    let sink = Arc::clone(sink);
    pipe.map(|pipe| thread::spawn(move || forward(pipe, kind, &sink)))
}

/// Reaps every process that ends (skiff-init is PID 1) until the function does.
fn reap_until(pid: i32) -> Result<ExitStatus, std::io::Error> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a valid out pointer for the call.
        let reaped = unsafe { waitpid(-1, &mut status, 0) };
        if reaped == pid {
            return Ok(ExitStatus::from_raw(status));
        }
        if reaped == -1 {
            let err = std::io::Error::last_os_error();
            if err.kind() != ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// Listen mode: take one call over TCP and run the function as a child.
fn listen_mode(port: &OsStr, program: &OsStr, args: &[OsString]) -> ! {
    let Some(port) = port.to_str().and_then(|p| p.parse::<u16>().ok()) else {
        fail(
            126,
            &format!("{LISTEN_VAR} must be a port number, not {port:?}"),
        );
    };
    for sig in [SIGTERM, SIGINT] {
        // SAFETY: on_signal only touches atomics and async-signal-safe syscalls.
        if unsafe { signal(sig, on_signal) } == usize::MAX {
            fail(126, "cannot install a signal handler");
        }
    }
    let (mut conn, sink) = match accept_one(port) {
        Ok(accepted) => accepted,
        Err(err) => fail(126, &format!("cannot take a call on port {port}: {err}")),
    };
    let (eof_tx, eof_rx) = mpsc::channel();
    let result = match read_frame(&mut conn) {
        Ok(Some(frame)) => run_function(program, args, &frame, conn, &sink, eof_tx),
        // The peer went away without a call: nothing to do.
        Ok(None) => exit(0),
        Err(message) => {
            spawn_feed_stdin(conn, None, &sink, eof_tx);
            Err((126, message))
        }
    };
    end_call(&sink, &eof_rx, result)
}

/// Accepts exactly one connection on `0.0.0.0:port` (the listener is closed on return), and
/// splits it into a read half and the shared write half.
fn accept_one(port: u16) -> std::io::Result<(TcpStream, Arc<Sink>)> {
    let (conn, _) = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?.accept()?;
    let _ = conn.set_nodelay(true);
    let write = conn.try_clone()?;
    Ok((conn, Sink::new(write)))
}

fn spawn_feed_stdin(
    conn: TcpStream,
    pipe: Option<ChildStdin>,
    sink: &Arc<Sink>,
    eof: mpsc::Sender<()>,
) {
    let sink = Arc::clone(sink);
    thread::spawn(move || feed_stdin(conn, pipe, &sink, eof));
}

/// Runs the function with the connection as its stdio; its exit status as the exit frame's
/// code (the exit code, or 128 + the signal that killed it), or why it could not run.
fn run_function(
    program: &OsStr,
    args: &[OsString],
    frame: &[u8],
    conn: TcpStream,
    sink: &Arc<Sink>,
    eof: mpsc::Sender<()>,
) -> Result<i32, (i32, String)> {
    let mut command = command(program, args, frame);
    command.env_remove(LISTEN_VAR);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so that what it starts can be killed with it.
    command.process_group(0);
    SPAWNING.store(true, SeqCst);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            // Even if the function cannot run, the request body is drained (see LINGER).
            spawn_feed_stdin(conn, None, sink, eof);
            return Err((
                127,
                format!("cannot run {}: {err}", program.to_string_lossy()),
            ));
        }
    };
    let pid = child.id() as i32;
    CHILD.store(pid, SeqCst);
    // Only this thread exists yet, so on_signal cannot run between the store and the swap:
    // a signal that came during the spawn is forwarded here, any later one by on_signal.
    let pending = PENDING.swap(0, SeqCst);
    if pending != 0 {
        // SAFETY: plain syscall.
        unsafe { kill(pid, pending) };
    }
    spawn_feed_stdin(conn, child.stdin.take(), sink, eof);
    let outputs = [
        spawn_forward(child.stdout.take(), STDOUT, sink),
        spawn_forward(child.stderr.take(), STDERR, sink),
    ];
    let heartbeat = Arc::clone(sink);
    thread::spawn(move || loop {
        thread::sleep(HEARTBEAT);
        if !heartbeat.send(STDOUT, &[]) {
            return;
        }
    });
    let status = reap_until(pid);
    CHILD.store(0, SeqCst);
    // As in a container whose PID 1 exits: what the function left behind goes with it.
    // SAFETY: plain syscall; the group id is the function's pid.
    unsafe { kill(-pid, SIGKILL) };
    for thread in outputs.into_iter().flatten() {
        let _ = thread.join();
    }
    let status = status.map_err(|err| (126, format!("cannot wait for the function: {err}")))?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Ends the call: an error line for an error, the exit frame, then a while for the rest of
/// the request body (closing with unread input would reset the connection, and the peer
/// could lose the exit frame); then exits, 0 if the function ran.
fn end_call(sink: &Sink, eof: &mpsc::Receiver<()>, result: Result<i32, (i32, String)>) -> ! {
    let (code, exit_code) = match result {
        Ok(code) => (code, 0),
        Err((code, message)) => {
            eprintln!("skiff-init: {message}");
            sink.send(STDERR, format!("skiff-init: {message}\n").as_bytes());
            (code, code)
        }
    };
    if let Err(lost) = sink.finish(code) {
        fail(
            126,
            &format!("the connection to skiff was lost ({lost}); the function was killed"),
        );
    }
    let _ = eof.recv_timeout(LINGER);
    exit(exit_code)
}
