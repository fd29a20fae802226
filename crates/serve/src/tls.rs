//! TLS for the servers and their local clients (docs/security.md "TLS"),
//! with rustls and its `ring` provider: PEM certificate and key files, an
//! optional CA whose certificates clients must present, the name a client
//! certificate carries (its subject's CN, else its first DNS name), and the
//! answer to a plain HTTP request sent to a TLS port. Reads the files it is
//! given; owns no connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The `tls` block of a server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate this CA signed.
    pub client_ca_file: Option<PathBuf>,
}

/// The `tls` block as configured: the server's files, and the client
/// certificate the local tools (`apinode-admin`) present when clients must
/// have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's files.
    pub files: TlsFiles,
    /// `clientCertFile` and `clientKeyFile`: what local tools present.
    pub tool_identity: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// The same settings with relative paths taken from `base`.
    pub fn resolved(&self, base: &Path) -> TlsSettings {
        let j = |p: &PathBuf| base.join(p);
        TlsSettings {
            files: TlsFiles {
                cert_file: j(&self.files.cert_file),
                key_file: j(&self.files.key_file),
                client_ca_file: self.files.client_ca_file.as_ref().map(j),
            },
            tool_identity: self.tool_identity.as_ref().map(|(c, k)| (j(c), j(k))),
        }
    }
}

/// Reads a `tls` block: `{"certFile", "keyFile", "clientCaFile"?,
/// "clientCertFile"?, "clientKeyFile"?}`, relative paths against `base`.
/// Pure: the files are read by [`TlsFiles::server_config`].
///
/// # Errors
/// Every problem, as `(key, message)`.
pub fn parse_settings(value: &serde_json::Value, base: &Path) -> Result<TlsSettings, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let Some(o) = value.as_object() else {
        return Err(vec![(
            "tls".into(),
            "must be an object such as {\"certFile\": \"config/node.pem\", \"keyFile\": \"config/node.key\"}".into(),
        )]);
    };
    let mut path = |key: &str| -> Option<PathBuf> {
        match o.get(key) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(base.join(s)),
            Some(_) => {
                problems.push((format!("tls.{key}"), "must be a file path".into()));
                None
            }
        }
    };
    let (cert, key, ca) = (path("certFile"), path("keyFile"), path("clientCaFile"));
    let (tool_cert, tool_key) = (path("clientCertFile"), path("clientKeyFile"));
    for k in o.keys() {
        if !["certFile", "keyFile", "clientCaFile", "clientCertFile", "clientKeyFile"].contains(&k.as_str()) {
            problems.push((
                format!("tls.{k}"),
                "unknown key (known: certFile, keyFile, clientCaFile, clientCertFile, clientKeyFile)".into(),
            ));
        }
    }
    if cert.is_none() {
        problems.push(("tls.certFile".into(), "is required: the server's certificate (PEM)".into()));
    }
    if key.is_none() {
        problems.push(("tls.keyFile".into(), "is required: the server's private key (PEM)".into()));
    }
    if tool_cert.is_some() != tool_key.is_some() {
        problems.push(("tls.clientCertFile".into(), "and tls.clientKeyFile go together".into()));
    }
    match (cert, key) {
        (Some(cert_file), Some(key_file)) if problems.is_empty() => Ok(TlsSettings {
            files: TlsFiles { cert_file, key_file, client_ca_file: ca },
            tool_identity: tool_cert.zip(tool_key),
        }),
        _ => Err(problems),
    }
}

/// The name of a client certificate, given to each request as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(pub String);

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds nothing usable.
    #[error("{file}: {why}")]
    File {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
    /// rustls refused the combination.
    #[error("{0}")]
    Rustls(String),
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File { file: path.display().to_string(), why: why.to_string() }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file (at least one).
///
/// # Errors
/// When the file cannot be read or holds no certificate.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
///
/// # Errors
/// When the file cannot be read or holds no key.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, format!("no usable PEM private key ({e})")))
}

/// The trust anchors of a PEM file of CA certificates.
///
/// # Errors
/// When the file cannot be read or a certificate is not a usable anchor.
pub fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(store)
}

impl TlsFiles {
    /// The rustls server settings: certificate, key, client verification.
    ///
    /// # Errors
    /// When a file is unusable, naming it.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = certificates(&self.cert_file)?;
        let key = private_key(&self.key_file)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| file_error(ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| file_error(&self.key_file, format!("does not match {}: {e}", self.cert_file.display())))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The name of a client certificate: its subject's common name, else its
/// first DNS name.
pub fn client_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Some(cn) = parsed.subject().iter_common_name().next().and_then(|c| c.as_str().ok()) {
        return Some(cn.to_owned());
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
        _ => None,
    })
}

/// A client's settings trusting the CA certificates of `ca_file`, or
/// exactly the server certificate of `pinned_cert_file` (the local tools
/// talking to their own node: no host name to match), presenting a client
/// certificate when given.
///
/// # Errors
/// When a file is unusable, naming it.
pub fn client_config(
    ca_file: Option<&Path>,
    pinned_cert_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (ca_file, pinned_cert_file) {
        (Some(ca), _) => builder.with_root_certificates(roots(ca)?),
        (None, Some(pinned)) => {
            let cert = certificates(pinned)?.swap_remove(0);
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Pinned { cert, provider: provider() }))
        }
        (None, None) => return Err(TlsError::Rustls("a TLS client needs a CA file or a pinned certificate".into())),
    };
    match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| file_error(key, format!("does not match {}: {e}", cert.display()))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Trusts exactly one server certificate (its signatures still checked).
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the server's certificate is not the node's own".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// What a plain HTTP request on a TLS port gets before the connection
/// closes: a 400 with the JSON error body every answer has.
pub fn plain_http_answer() -> Vec<u8> {
    let body = r#"{"errorType":"HttpsRequired","message":"this port serves HTTPS: use https:// (a plain HTTP request was sent to a TLS port)"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
