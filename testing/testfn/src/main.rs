//! `testfn`: a function image for skiff's end-to-end tests.
//!
//! Its behaviour is picked by the `MODE` environment variable, so that one image serves
//! every test (each test deploys it with its own `--env MODE=...`):
//!
//! | MODE | behaviour |
//! | --- | --- |
//! | `echo` (default) | copies stdin to stdout byte for byte |
//! | `env` | prints its environment as sorted `KEY=VALUE` lines |
//! | `sleep` | sleeps `SLEEP_MS` milliseconds (default: an hour), then echoes |
//! | `exit` | writes `failing on purpose` to stderr and exits with `EXIT_CODE` (default 3) |
//! | `abort` | aborts (SIGABRT), like a crashing program |
//! | `oom` | allocates and touches memory until the kernel kills it |
//! | `flood` | writes to stdout without end |
//! | `isolation` | reports what the sandbox allows, one `key=value` line each |
//! | `call` | calls function `TARGET` through `$SKIFF_API_URL` with `$SKIFF_TOKEN`, stdin as the body; prints the answer (exit 1 unless 2xx) |
//! | `volume` | for `VOLUME_DIR` (default `/data`): appends stdin to `log`, renames a file, prints `log` |
//! | `report` | writes `body=<stdin>` and its `SKIFF_HEADER_*` variables to stderr, then echoes; exits 1 if the body holds `fail-always`, or `fail-once` on delivery 1 (`X-Skiff-Delivery`) |
//! | `request` | sends `METHOD` (default `GET`) `REQUEST_PATH` to `$SKIFF_API_URL` with `$SKIFF_TOKEN`, the headers in `HEADERS` (`Name: value` entries separated by `;;`) and stdin as the body; prints the status code, a newline, and the answer's body (exit 0 whatever the status) |
//! | `connect` | tries a TCP connection to `ADDR` (`ip:port`; else stdin) for 3 s; prints `connected` or `failed: <error>` |
//! | `listen` | accepts TCP connections on `0.0.0.0:$LISTEN_PORT` (default 9000), answering each with `hello`, until it is killed |

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mode = std::env::var("MODE").unwrap_or_else(|_| "echo".to_string());
    match mode.as_str() {
        "echo" => echo(),
        "env" => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            let mut out = io::stdout().lock();
            for (key, value) in vars {
                let _ = writeln!(out, "{key}={value}");
            }
            ExitCode::SUCCESS
        }
        "sleep" => {
            let ms = std::env::var("SLEEP_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3_600_000);
            std::thread::sleep(Duration::from_millis(ms));
            echo()
        }
        "exit" => {
            let code = std::env::var("EXIT_CODE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3);
            eprintln!("failing on purpose");
            ExitCode::from(code)
        }
        "abort" => std::process::abort(),
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // 8 MiB at a time, every page written so that it is really charged.
                hoard.push(vec![1u8; 8 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "flood" => {
            let chunk = vec![b'x'; 64 * 1024];
            let mut out = io::stdout().lock();
            while out.write_all(&chunk).is_ok() {}
            ExitCode::SUCCESS
        }
        "isolation" => isolation(),
        "call" => call(),
        "volume" => volume(),
        "report" => report(),
        "request" => request(),
        "connect" => connect(),
        "listen" => listen(),
        other => {
            eprintln!("testfn: unknown MODE {other}");
            ExitCode::from(64)
        }
    }
}

fn echo() -> ExitCode {
    match io::copy(&mut io::stdin().lock(), &mut io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("testfn: echo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One HTTP/1.1 request to `$SKIFF_API_URL` with `$SKIFF_TOKEN`: returns the status code
/// and the body (de-chunked).
fn api_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(String, Vec<u8>), String> {
    let (Ok(url), Ok(token)) = (std::env::var("SKIFF_API_URL"), std::env::var("SKIFF_TOKEN"))
    else {
        return Err("needs SKIFF_API_URL and SKIFF_TOKEN".to_string());
    };
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let answer = (|| -> io::Result<Vec<u8>> {
        let mut stream = std::net::TcpStream::connect(host)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    })()
    .map_err(|err| format!("cannot call {url}: {err}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let mut body = answer.get(split + 4..).unwrap_or_default().to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let status = head.split(' ').nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

/// `POST $SKIFF_API_URL/v1/functions/$TARGET/invoke` over plain HTTP/1.1, stdin as the body.
fn call() -> ExitCode {
    let Ok(target) = std::env::var("TARGET") else {
        eprintln!("testfn: call needs SKIFF_API_URL, SKIFF_TOKEN and TARGET");
        return ExitCode::from(2);
    };
    let mut body = Vec::new();
    if let Err(err) = io::stdin().read_to_end(&mut body) {
        eprintln!("testfn: cannot read stdin: {err}");
        return ExitCode::FAILURE;
    }
    let (status, body) = match api_request(
        "POST",
        &format!("/v1/functions/{target}/invoke"),
        &[],
        &body,
    ) {
        Ok(answer) => answer,
        Err(err) => {
            eprintln!("testfn: {err}");
            return ExitCode::FAILURE;
        }
    };
    if status.starts_with('2') {
        let _ = io::stdout().write_all(&body);
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "testfn: {target} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        ExitCode::FAILURE
    }
}

/// Any request of the function API (see the table above).
fn request() -> ExitCode {
    let method = std::env::var("METHOD").unwrap_or_else(|_| "GET".to_string());
    let path = std::env::var("REQUEST_PATH").unwrap_or_else(|_| "/".to_string());
    let headers: Vec<(String, String)> = std::env::var("HEADERS")
        .unwrap_or_default()
        .split(";;")
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = Vec::new();
    if let Err(err) = io::stdin().read_to_end(&mut body) {
        eprintln!("testfn: cannot read stdin: {err}");
        return ExitCode::FAILURE;
    }
    match api_request(&method, &path, &headers, &body) {
        Ok((status, body)) => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{status}");
            let _ = out.write_all(&body);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("testfn: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Tries a TCP connection (see the table above).
fn connect() -> ExitCode {
    let addr = match std::env::var("ADDR") {
        Ok(addr) => addr,
        Err(_) => {
            let mut text = String::new();
            let _ = io::stdin().read_to_string(&mut text);
            text.trim().to_string()
        }
    };
    let outcome = addr
        .parse::<std::net::SocketAddr>()
        .map_err(|e| e.to_string())
        .and_then(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .map_err(|e| e.to_string())
        });
    let mut out = io::stdout().lock();
    let _ = match outcome {
        Ok(_) => writeln!(out, "connected"),
        Err(err) => writeln!(out, "failed: {err}"),
    };
    ExitCode::SUCCESS
}

/// Serves `hello` to every connection (see the table above).
fn listen() -> ExitCode {
    let port = std::env::var("LISTEN_PORT").unwrap_or_else(|_| "9000".to_string());
    let listener = match std::net::TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("testfn: cannot listen on {port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {port}");
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let _ = stream.write_all(b"hello\n");
    }
    ExitCode::SUCCESS
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        data = &data[end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Writes in a volume: appends stdin to `log` (through a renamed temporary file), then
/// prints the whole `log`. A read-only mount fails with the error on stderr.
fn volume() -> ExitCode {
    let dir =
        std::path::PathBuf::from(std::env::var("VOLUME_DIR").unwrap_or_else(|_| "/data".into()));
    let mut input = Vec::new();
    let _ = io::stdin().read_to_end(&mut input);
    let log = dir.join("log");
    let result = (|| -> io::Result<Vec<u8>> {
        let mut content = match std::fs::read(&log) {
            Ok(content) => content,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        if !input.is_empty() {
            content.extend_from_slice(&input);
            let temp = dir.join(format!("log.{}.tmp", std::process::id()));
            std::fs::write(&temp, &content)?;
            std::fs::rename(&temp, &log)?;
        }
        Ok(content)
    })();
    match result {
        Ok(content) => {
            let _ = io::stdout().write_all(&content);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("testfn: volume: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Reports the call on stderr, then echoes (see the table above).
fn report() -> ExitCode {
    let mut body = Vec::new();
    if let Err(err) = io::stdin().lock().read_to_end(&mut body) {
        eprintln!("testfn: cannot read stdin: {err}");
        return ExitCode::FAILURE;
    }
    let text = String::from_utf8_lossy(&body);
    eprintln!("body={text}");
    let mut headers: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SKIFF_HEADER_"))
        .collect();
    headers.sort();
    for (key, value) in &headers {
        eprintln!("{key}={value}");
    }
    let delivery = std::env::var("SKIFF_HEADER_X_SKIFF_DELIVERY").unwrap_or_default();
    if text.contains("fail-always") || (text.contains("fail-once") && delivery == "1") {
        eprintln!("failing on purpose");
        return ExitCode::from(1);
    }
    let _ = io::stdout().lock().write_all(&body);
    ExitCode::SUCCESS
}

fn isolation() -> ExitCode {
    let mut out = io::stdout().lock();
    let root_writable = std::fs::write("/probe", b"x").is_ok();
    let tmp_writable = std::fs::write("/tmp/probe", b"x").is_ok();
    let _ = writeln!(out, "root_writable={root_writable}");
    let _ = writeln!(out, "tmp_writable={tmp_writable}");
    let mut status = String::new();
    if let Ok(mut file) = std::fs::File::open("/proc/self/status") {
        let _ = file.read_to_string(&mut status);
    }
    for line in status.lines() {
        if let Some((key, value)) = line.split_once(':') {
            if matches!(key, "CapEff" | "CapBnd" | "NoNewPrivs" | "Uid") {
                let _ = writeln!(out, "{key}={}", value.trim());
            }
        }
    }
    for (key, path) in [
        ("pids_max", "/sys/fs/cgroup/pids.max"),
        ("memory_max", "/sys/fs/cgroup/memory.max"),
        ("cpu_max", "/sys/fs/cgroup/cpu.max"),
        ("pids_max", "/sys/fs/cgroup/pids/pids.max"),
        ("memory_max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ] {
        if let Ok(value) = std::fs::read_to_string(path) {
            let _ = writeln!(out, "{key}={}", value.trim());
        }
    }
    // cgroup v1 keeps the CPU quota in two files; report it in v2's `quota period` form.
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_string())
    };
    if let (Some(quota), Some(period)) = (
        read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ) {
        let _ = writeln!(out, "cpu_max={quota} {period}");
    }
    let docker_socket = std::path::Path::new("/var/run/docker.sock").exists();
    let _ = writeln!(out, "docker_socket={docker_socket}");
    ExitCode::SUCCESS
}
