//! TLS as libpq users expect it, on rustls.
//!
//! | sslmode | TLS | certificate checked | host name checked |
//! |---|---|---|---|
//! | disable | never | - | - |
//! | allow, prefer | if the server offers it | no | no |
//! | require | always | only if the root certificate file exists (as libpq) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes: the SAN, or the CN when there is no SAN (as libpq) |
//!
//! The root certificate is `sslrootcert` (a PEM file; `system` means the operating system's
//! store), falling back to `~/.postgresql/root.crt` as libpq does. Like libpq, a missing root
//! file is an error only for verify-ca and verify-full.
//!
//! Without a root, the certificate is not checked at all (not even parsed as X.509 v3: the
//! classic `openssl x509 -req` recipe makes v1 certificates, which libpq accepts), but the
//! handshake signature is still verified against the certificate's public key.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::dsn::{ConnInfo, SslMode};

/// A TLS set-up problem, before any connection is tried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `info`'s sslmode, or `None` for `disable`.
pub fn client_config(info: &ConnInfo) -> Result<Option<ClientConfig>, TlsError> {
    let mode = info.sslmode();
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let verify_mode = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let roots = match &info.sslrootcert {
        // libpq: without verification asked for, a missing root file is silently skipped.
        Some(path) if !verify_mode && path.as_os_str() != "system" && !path.exists() => None,
        Some(path) => Some(load_roots(path)?),
        None => None,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS set-up failed: {e}")))?;
    let verify_chain = verify_mode || (mode == SslMode::Require && roots.is_some());
    let verifier: Arc<dyn ServerCertVerifier> = if verify_chain {
        let roots = roots.ok_or_else(|| {
            TlsError(format!(
                "sslmode={} needs a root certificate to verify the server: set sslrootcert to the CA's PEM file (for RDS/Aurora, the global bundle), or sslrootcert=system for the system store",
                mode.as_str()
            ))
        })?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError(format!("cannot use the root certificates: {e}")))?;
        Arc::new(Verifier {
            inner: webpki,
            check_host: mode == SslMode::VerifyFull,
        })
    } else {
        Arc::new(NoVerification(provider()))
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&info.sslcert, &info.sslkey) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| TlsError(format!("client certificate {}: {e}", cert.display())))?,
        (Some(_), None) | (None, Some(_)) => {
            return Err(TlsError(
                "sslcert and sslkey go together: give both, or neither".to_string(),
            ))
        }
        (None, None) => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

/// The operating system's CA bundle file, for clients that do not know `sslrootcert=system`
/// (libpq before 16 takes it as a file name): OpenSSL's `SSL_CERT_FILE` when set (as libpq 16
/// and rustls-native-certs honour it), else the first bundle of Debian/Ubuntu, RHEL/Fedora,
/// SUSE, Alpine that exists.
pub fn system_bundle_file(env: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    if let Some(f) = env("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Some(f.into());
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if path.as_os_str() == "system" {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = store.add(cert);
        }
        if store.is_empty() {
            return Err(TlsError(
                "sslrootcert=system, but the system certificate store is empty: install ca-certificates"
                    .to_string(),
            ));
        }
        return Ok(store);
    }
    for cert in load_certs(path)? {
        store.add(cert).map_err(|e| {
            TlsError(format!(
                "root certificate file {} holds a certificate rustls cannot use: {e}",
                path.display()
            ))
        })?;
    }
    Ok(store)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| {
        TlsError(format!(
            "cannot read certificate file {}: {e}",
            path.display()
        ))
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("certificate file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path)
        .map_err(|e| TlsError(format!("cannot read key file {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| TlsError(format!("key file {}: {e}", path.display())))?
        .ok_or_else(|| {
            TlsError(format!(
                "key file {} holds no PEM private key",
                path.display()
            ))
        })
}

/// Chain verification, with the host-name check only for verify-full.
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            // The chain is good (webpki checks the name last); libpq accepts the CN when the
            // certificate has no DNS or IP subject alternative name.
            Err(
                e @ rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ),
            ) => match cert_names(end_entity.as_ref()) {
                Some(names)
                    if !names.has_san_names
                        && names
                            .common_name
                            .as_deref()
                            .is_some_and(|cn| host_matches(cn, &server_name_text(server_name))) =>
                {
                    Ok(ServerCertVerified::assertion())
                }
                _ => Err(e),
            },
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Encryption without authentication: libpq's `prefer` and `require` without a root.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2: every algorithm of the scheme whose key type is the certificate's is tried.
        let spki = spki(cert.as_ref()).ok_or_else(bad_cert)?;
        let algs = &self.0.signature_verification_algorithms;
        let candidates = algs
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, a)| a.iter())
            .filter(|a| a.public_key_alg_id().as_ref() == spki.algorithm);
        for alg in candidates {
            if alg
                .verify_signature(spki.key, message, dss.signature())
                .is_ok()
            {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = spki(cert.as_ref()).ok_or_else(bad_cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &rustls::pki_types::SubjectPublicKeyInfoDer::from(spki.der),
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn bad_cert() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
}

/// The host name rustls was given, as text (an IP address in its usual form).
fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

/// libpq's match of a certificate name against the host: case-insensitive, and a leading `*.`
/// stands for exactly one label (`*.example.com` matches `db.example.com`, not
/// `a.b.example.com` nor `example.com`).
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern.contains('\0') || host.is_empty() {
        return false;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        };
    }
    pattern.eq_ignore_ascii_case(host)
}

/// One DER element: its tag, its contents, and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;

/// One DER field: tag, contents, and the whole element.
type Field<'a> = (u8, &'a [u8], &'a [u8]);

/// The fields of a certificate's `TBSCertificate`, in order, any X.509 version.
fn tbs_fields(cert: &[u8]) -> Option<Vec<Field<'_>>> {
    let (tag, cert, _) = der(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = der(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut fields = Vec::new();
    while !tbs.is_empty() {
        let (tag, contents, rest) = der(tbs)?;
        // The whole element (tag, length and contents) as well, for the SPKI.
        let whole = &tbs[..tbs.len() - rest.len()];
        fields.push((tag, contents, whole));
        tbs = rest;
    }
    // The optional `[0] version` comes first; without it (v1) the serial number does.
    if fields.first().is_some_and(|f| f.0 == 0xa0) {
        fields.remove(0);
    }
    Some(fields)
}

/// A certificate's public key: the whole `SubjectPublicKeyInfo`, the contents of its algorithm
/// identifier, and the key bits.
struct Spki<'a> {
    der: &'a [u8],
    algorithm: &'a [u8],
    key: &'a [u8],
}

fn spki(cert: &[u8]) -> Option<Spki<'_>> {
    // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    let fields = tbs_fields(cert)?;
    let (tag, contents, whole) = *fields.get(5)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, algorithm, rest) = der(contents)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, bits, _) = der(rest)?;
    if tag != 0x03 {
        return None;
    }
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    Some(Spki {
        der: whole,
        algorithm,
        key,
    })
}

/// What libpq's host-name check reads from a certificate.
struct CertNames {
    /// Whether a subject alternative name of type DNS or IP address is present.
    has_san_names: bool,
    /// The subject's first common name.
    common_name: Option<String>,
}

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

fn cert_names(cert: &[u8]) -> Option<CertNames> {
    let fields = tbs_fields(cert)?;
    let (_, subject, _) = *fields.get(4)?;
    let mut common_name = None;
    let mut rdns = subject;
    'rdns: while !rdns.is_empty() {
        let (_, set, rest) = der(rdns)?;
        rdns = rest;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (_, attr, rest) = der(attrs)?;
            attrs = rest;
            let (_, oid, value) = der(attr)?;
            if oid == OID_COMMON_NAME {
                let (tag, text, _) = der(value)?;
                common_name = match tag {
                    // BMPString: UTF-16BE.
                    0x1e => {
                        let units: Vec<u16> = text
                            .chunks(2)
                            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                            .collect();
                        String::from_utf16(&units).ok()
                    }
                    _ => std::str::from_utf8(text).ok().map(str::to_string),
                };
                break 'rdns;
            }
        }
    }
    let mut has_san_names = false;
    if let Some((_, exts, _)) = fields.iter().find(|f| f.0 == 0xa3) {
        let (_, mut list, _) = der(exts)?;
        while !list.is_empty() {
            let (_, ext, rest) = der(list)?;
            list = rest;
            let (_, oid, mut after) = der(ext)?;
            if oid != OID_SUBJECT_ALT_NAME {
                continue;
            }
            let (tag, _, rest) = der(after)?;
            if tag == 0x01 {
                after = rest; // `critical`
            }
            let (_, value, _) = der(after)?;
            let (_, mut names, _) = der(value)?;
            while !names.is_empty() {
                let (tag, _, rest) = der(names)?;
                names = rest;
                // [2] dNSName, [7] iPAddress
                if tag == 0x82 || tag == 0x87 {
                    has_san_names = true;
                }
            }
        }
    }
    Some(CertNames {
        has_san_names,
        common_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_match_as_libpq() {
        assert!(host_matches("db.example.com", "DB.example.COM"));
        assert!(host_matches("*.example.com", "db.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("db.example.com", "db.example.org"));
        assert!(!host_matches("db\0.example.com", "db"));
    }

    #[test]
    fn names_and_key_are_read_from_v3_certificates() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cn-only.example");
        let cert = params.self_signed(&key).expect("cert");
        let names = cert_names(cert.der()).expect("parses");
        assert!(!names.has_san_names);
        assert_eq!(names.common_name.as_deref(), Some("cn-only.example"));
        let spki = spki(cert.der()).expect("spki");
        assert_eq!(spki.key, key.public_key_raw());

        let params = rcgen::CertificateParams::new(vec!["san.example".to_string()]).expect("p");
        let cert = params.self_signed(&key).expect("cert");
        assert!(cert_names(cert.der()).expect("parses").has_san_names);
    }

    #[test]
    fn missing_root_file_is_skipped_unless_verification_is_asked_for() {
        for mode in ["prefer", "require", "allow"] {
            let info = ConnInfo::parse(&format!(
                "host=h sslmode={mode} sslrootcert=/nonexistent/root.crt"
            ))
            .expect("parses");
            assert!(client_config(&info).expect("ignored").is_some(), "{mode}");
        }
    }

    #[test]
    fn disable_means_no_tls() {
        let info = ConnInfo::parse("host=h sslmode=disable").expect("parses");
        assert!(client_config(&info).expect("ok").is_none());
    }

    #[test]
    fn verify_modes_need_a_root() {
        for mode in ["verify-ca", "verify-full"] {
            let info = ConnInfo::parse(&format!("host=h sslmode={mode}")).expect("parses");
            let err = client_config(&info).expect_err("needs root");
            assert!(err.0.contains("sslrootcert"), "{}", err.0);
        }
        let info = ConnInfo::parse("host=h sslmode=require").expect("parses");
        assert!(client_config(&info).expect("ok").is_some());
    }

    #[test]
    fn unreadable_root_is_named() {
        let info = ConnInfo::parse("host=h sslmode=verify-full sslrootcert=/nonexistent/root.pem")
            .expect("parses");
        let err = client_config(&info).expect_err("missing file");
        assert!(err.0.contains("/nonexistent/root.pem"), "{}", err.0);
    }
}
