//! Where the Docker engine is: `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`,
//! read as the docker CLI reads them, and refused with a clear reason when skiff cannot
//! use them (rather than silently falling back to the local socket).

use std::fmt;
use std::path::{Path, PathBuf};

/// The engine's socket when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// The engine's port for plain TCP when `DOCKER_HOST` names none (as the docker CLI).
const DEFAULT_TCP_PORT: u16 = 2375;
/// The engine's port for TLS when `DOCKER_HOST` names none (as the docker CLI).
const DEFAULT_TLS_PORT: u16 = 2376;

/// How to reach the Docker engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (`unix:///var/run/docker.sock`, the default).
    Unix(PathBuf),
    /// Plain TCP to `host:port`, unencrypted and unauthenticated.
    Tcp {
        /// `host:port` (an IPv6 host in brackets).
        address: String,
    },
    /// TCP with TLS to `host:port`: the engine's certificate is checked against `ca.pem`,
    /// and skiff shows `cert.pem` (with `key.pem`), all three in `cert_dir`.
    Tls {
        /// `host:port` (an IPv6 host in brackets).
        address: String,
        /// The folder with `ca.pem`, `cert.pem` and `key.pem`.
        cert_dir: PathBuf,
    },
}

/// The environment variables that say where the engine is; [`EndpointEnv::from_process`]
/// reads them. Empty values count as unset, as with the docker CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointEnv {
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `DOCKER_TLS_VERIFY`: any non-empty value turns TLS on, with verification.
    pub tls_verify: Option<String>,
    /// `DOCKER_TLS`: TLS without verifying the engine (refused by skiff).
    pub tls: Option<String>,
    /// `DOCKER_CERT_PATH`: where the TLS files are (default `~/.docker`).
    pub cert_path: Option<String>,
    /// `HOME`, for the default certificate folder.
    pub home: Option<String>,
}

impl EndpointEnv {
    /// The variables of this process.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        EndpointEnv {
            docker_host: var("DOCKER_HOST"),
            tls_verify: var("DOCKER_TLS_VERIFY"),
            tls: var("DOCKER_TLS"),
            cert_path: var("DOCKER_CERT_PATH"),
            home: var("HOME"),
        }
    }
}

/// Why the engine's address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// `DOCKER_HOST` is not an address skiff can use.
    #[error("DOCKER_HOST={value}: {reason}")]
    Host {
        /// The value of `DOCKER_HOST`.
        value: String,
        /// Why it cannot be used, and what to use instead.
        reason: String,
    },
    /// The TLS settings cannot be used.
    #[error("{0}")]
    Tls(String),
    /// A TLS file is missing or unreadable.
    #[error("DOCKER_TLS_VERIFY is set but {path} cannot be read ({message}); DOCKER_CERT_PATH names the folder with ca.pem, cert.pem and key.pem")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        message: String,
    },
}

impl Endpoint {
    /// The endpoint that `env` describes, or why it cannot be used.
    pub fn from_env(env: &EndpointEnv) -> Result<Endpoint, EndpointError> {
        let tls = env.tls_verify.is_some();
        let Some(host) = env.docker_host.as_deref() else {
            return Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)));
        };
        let refuse = |reason: &str| EndpointError::Host {
            value: host.to_string(),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = host.split_once("://") else {
            return Err(refuse(
                "not an address skiff understands: use unix:///path/to/docker.sock or tcp://host:port",
            ));
        };
        match scheme {
            // TLS settings concern TCP only; a socket is guarded by its file permissions.
            "unix" => {
                let path = if rest.is_empty() { DEFAULT_SOCKET } else { rest };
                if !path.starts_with('/') {
                    return Err(refuse("the socket path must be absolute (unix:///path/to/docker.sock)"));
                }
                Ok(Endpoint::Unix(PathBuf::from(path)))
            }
            "tcp" => {
                let address = tcp_address(rest, if tls { DEFAULT_TLS_PORT } else { DEFAULT_TCP_PORT })
                    .map_err(|reason| refuse(&reason))?;
                if tls {
                    let cert_dir = match (&env.cert_path, &env.home) {
                        (Some(dir), _) => PathBuf::from(dir),
                        (None, Some(home)) => Path::new(home).join(".docker"),
                        (None, None) => {
                            return Err(EndpointError::Tls(
                                "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME says where ca.pem, cert.pem and key.pem are".to_string(),
                            ))
                        }
                    };
                    return Ok(Endpoint::Tls { address, cert_dir });
                }
                if env.tls.is_some() {
                    return Err(EndpointError::Tls(
                        "DOCKER_TLS asks for TLS without checking the engine's certificate, which skiff does not do: set DOCKER_TLS_VERIFY=1 (and DOCKER_CERT_PATH)".to_string(),
                    ));
                }
                if let Some(dir) = &env.cert_path {
                    return Err(EndpointError::Tls(format!(
                        "DOCKER_CERT_PATH={dir} is set but DOCKER_TLS_VERIFY is not: set DOCKER_TLS_VERIFY=1 to reach the engine over TLS, or unset DOCKER_CERT_PATH for plain TCP"
                    )));
                }
                Ok(Endpoint::Tcp { address })
            }
            "ssh" => Err(refuse(
                "skiff does not reach engines over SSH; forward the engine's socket instead (ssh -NL /tmp/docker.sock:/var/run/docker.sock HOST) and set DOCKER_HOST=unix:///tmp/docker.sock",
            )),
            "npipe" => Err(refuse("a Windows named pipe; skiff runs on Linux: use unix:// or tcp://")),
            "fd" => Err(refuse("fd:// is for the engine's own listener: use unix:// or tcp://")),
            "http" | "https" => Err(refuse(
                "use tcp://host:port (with DOCKER_TLS_VERIFY=1 for TLS), as the docker CLI does",
            )),
            _ => Err(refuse(&format!(
                "unknown scheme `{scheme}`: use unix:///path/to/docker.sock or tcp://host:port"
            ))),
        }
    }

    /// Reads `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` of this process.
    pub fn from_process() -> Result<Endpoint, EndpointError> {
        Endpoint::from_env(&EndpointEnv::from_process())
    }
}

/// `host:port` from what follows `tcp://`, with the default port when none is given.
fn tcp_address(rest: &str, default_port: u16) -> Result<String, String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err("only tcp://host:port is supported (no path, query or user)".to_string());
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 address needs its closing bracket: tcp://[::1]:2375".to_string());
        };
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err("expected :port after the IPv6 address".to_string()),
            },
        };
        (format!("[{ip}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (rest.to_string(), None),
        }
    };
    if host.contains(':') && !host.starts_with('[') {
        return Err("an IPv6 address goes in brackets: tcp://[::1]:2375".to_string());
    }
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("`{p}` is not a port (1 to 65535)")),
        },
    };
    Ok(format!("{host}:{port}"))
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { address } => write!(f, "tcp://{address}"),
            Endpoint::Tls { address, cert_dir } => write!(
                f,
                "tcp://{address} (TLS, certificates in {})",
                cert_dir.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(host: Option<&str>) -> EndpointEnv {
        EndpointEnv {
            docker_host: host.map(str::to_string),
            home: Some("/home/ann".to_string()),
            ..EndpointEnv::default()
        }
    }

    fn tcp(address: &str) -> Endpoint {
        Endpoint::Tcp {
            address: address.to_string(),
        }
    }

    #[test]
    fn unix_sockets_and_the_default() {
        assert_eq!(
            Endpoint::from_env(&env(None)),
            Ok(Endpoint::Unix(DEFAULT_SOCKET.into()))
        );
        assert_eq!(
            Endpoint::from_env(&env(Some("unix:///run/user/1000/docker.sock"))),
            Ok(Endpoint::Unix("/run/user/1000/docker.sock".into()))
        );
        assert_eq!(
            Endpoint::from_env(&env(Some("unix://"))),
            Ok(Endpoint::Unix(DEFAULT_SOCKET.into()))
        );
        assert!(Endpoint::from_env(&env(Some("unix://relative.sock"))).is_err());
        // TLS settings are about TCP; a socket ignores them, as with the docker CLI.
        let with_tls = EndpointEnv {
            tls_verify: Some("1".into()),
            ..env(Some("unix:///var/run/docker.sock"))
        };
        assert_eq!(
            Endpoint::from_env(&with_tls),
            Ok(Endpoint::Unix(DEFAULT_SOCKET.into()))
        );
    }

    #[test]
    fn tcp_addresses_get_the_docker_cli_defaults() {
        for (host, expected) in [
            ("tcp://127.0.0.1:2375", "127.0.0.1:2375"),
            ("tcp://127.0.0.1:2375/", "127.0.0.1:2375"),
            ("tcp://docker.example:1234", "docker.example:1234"),
            ("tcp://10.0.0.2", "10.0.0.2:2375"),
            ("tcp://:4243", "localhost:4243"),
            ("tcp://", "localhost:2375"),
            ("tcp://[::1]:2375", "[::1]:2375"),
            ("tcp://[::1]", "[::1]:2375"),
        ] {
            assert_eq!(
                Endpoint::from_env(&env(Some(host))),
                Ok(tcp(expected)),
                "{host}"
            );
        }
        for bad in [
            "tcp://host:port",
            "tcp://host:0",
            "tcp://host:70000",
            "tcp://host:2375/v1.41",
            "tcp://user@host:2375",
            "tcp://::1:2375",
            "tcp://[::1",
            "tcp://[::1]x",
        ] {
            let err = Endpoint::from_env(&env(Some(bad))).expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!("DOCKER_HOST={bad}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn what_skiff_cannot_use_is_refused_with_the_reason() {
        for (host, says) in [
            ("ssh://user@host", "SSH"),
            ("npipe:////./pipe/docker_engine", "named pipe"),
            ("fd://", "engine's own listener"),
            ("http://127.0.0.1:2375", "tcp://host:port"),
            ("https://127.0.0.1:2376", "DOCKER_TLS_VERIFY"),
            ("foo://bar", "unknown scheme `foo`"),
            ("garbage", "unix:///path/to/docker.sock or tcp://host:port"),
            ("127.0.0.1:2375", "tcp://host:port"),
        ] {
            let err = Endpoint::from_env(&env(Some(host))).expect_err(host);
            let text = err.to_string();
            assert!(text.starts_with(&format!("DOCKER_HOST={host}: ")), "{text}");
            assert!(text.contains(says), "{host}: {text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }

    #[test]
    fn tls_settings_are_read_as_the_docker_cli_reads_them() {
        // DOCKER_TLS_VERIFY (any non-empty value) turns TLS on; the default port is 2376,
        // the certificates are in DOCKER_CERT_PATH, else ~/.docker.
        let verify = EndpointEnv {
            tls_verify: Some("1".into()),
            ..env(Some("tcp://10.0.0.2"))
        };
        assert_eq!(
            Endpoint::from_env(&verify),
            Ok(Endpoint::Tls {
                address: "10.0.0.2:2376".into(),
                cert_dir: "/home/ann/.docker".into()
            })
        );
        let with_dir = EndpointEnv {
            cert_path: Some("/etc/skiff/docker".into()),
            ..verify.clone()
        };
        let endpoint = Endpoint::from_env(&with_dir).expect("tls");
        assert_eq!(
            endpoint,
            Endpoint::Tls {
                address: "10.0.0.2:2376".into(),
                cert_dir: "/etc/skiff/docker".into()
            }
        );
        assert_eq!(
            endpoint.to_string(),
            "tcp://10.0.0.2:2376 (TLS, certificates in /etc/skiff/docker)"
        );
        let no_home = EndpointEnv {
            home: None,
            ..verify.clone()
        };
        assert!(matches!(
            Endpoint::from_env(&no_home),
            Err(EndpointError::Tls(_))
        ));

        // TLS without verification, and certificates without TLS, are refused.
        let unverified = EndpointEnv {
            tls: Some("1".into()),
            ..env(Some("tcp://10.0.0.2:2376"))
        };
        let err = Endpoint::from_env(&unverified).expect_err("DOCKER_TLS");
        assert!(err.to_string().contains("DOCKER_TLS_VERIFY=1"), "{err}");
        let certs_only = EndpointEnv {
            cert_path: Some("/certs".into()),
            ..env(Some("tcp://10.0.0.2:2376"))
        };
        let err = Endpoint::from_env(&certs_only).expect_err("DOCKER_CERT_PATH alone");
        assert!(err.to_string().contains("DOCKER_CERT_PATH=/certs"), "{err}");
    }
}
