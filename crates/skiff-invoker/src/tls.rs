//! TLS as skiff's clients use it (https callbacks, the CLI): rustls with the `ring`
//! provider, trusting the system's roots and, optionally, the certificates of one more
//! PEM file (a private CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// Why a TLS configuration cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file that cannot be read, or holds no certificate.
    #[error("cannot read certificates from {}: {message}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Makes `ring` the process's rustls provider, for HTTP clients that look for one (once;
/// later calls do nothing). The binary calls it first thing.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The crypto provider skiff uses (the same for every configuration).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of the PEM file at `path` (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::Certificates {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no certificate in it".into()));
    }
    Ok(certs)
}

/// A client configuration trusting the system's roots and those of `extra_ca`.
pub fn client_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(%err, "a system certificate cannot be read");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        for cert in certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::Certificates {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
