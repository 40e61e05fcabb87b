//! TLS in the tests: the crypto provider every HTTP client of the process uses (`ring`, as
//! skiff itself), and certificates made with the openssl command.

use std::path::Path;
use std::process::Command;

/// Installs `ring` as the process's rustls provider (once; later calls do nothing). The
/// HTTP clients of the tests need it before they are built.
pub fn install_provider() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client (the provider installed first).
pub fn client() -> reqwest::Client {
    install_provider();
    reqwest::Client::new()
}

/// A client that trusts the CA of the PEM file `ca` (and the system's roots).
pub fn client_trusting(ca: &Path) -> reqwest::Client {
    install_provider();
    let pem = std::fs::read(ca).expect("the CA file");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a CA certificate"))
        .build()
        .expect("an HTTPS client")
}

/// Writes, with the openssl command, a CA (`ca.pem`, `ca-key.pem`), a server certificate
/// for 127.0.0.1 and localhost (`server.pem`, `server-key.pem`) and a client certificate
/// (`cert.pem`, `key.pem`: the docker CLI's names) signed by it.
pub fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (the openssl package)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("client.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=skiff test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca-key.pem", "-out", "ca.pem"]);
    run(&ca);
    for (name, key, ext) in [
        ("server", "server-key.pem", "server.ext"),
        ("client", "key.pem", "client.ext"),
    ] {
        let csr = format!("{name}.csr");
        let cert = if name == "client" {
            "cert.pem".to_string()
        } else {
            format!("{name}.pem")
        };
        let subject = format!("/CN=skiff test {name}");
        let mut req = vec!["req", "-subj", subject.as_str()];
        req.extend(ec);
        req.extend(["-keyout", key, "-out", csr.as_str()]);
        run(&req);
        run(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-extfile",
            ext,
            "-out",
            &cert,
        ]);
    }
}
