//! TLS as libpq users expect it, on rustls.
//!
//! | sslmode | TLS | certificate checked | host name checked |
//! |---|---|---|---|
//! | disable | never | - | - |
//! | allow, prefer | if the server offers it | no | no |
//! | require | always | only if a root certificate is given (as libpq) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes |
//!
//! The root certificate is `sslrootcert` (a PEM file; `system` means the operating system's
//! store), falling back to `~/.postgresql/root.crt` as libpq does.

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
    let roots = match &info.sslrootcert {
        Some(path) => Some(load_roots(path)?),
        None => None,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS set-up failed: {e}")))?;
    let verify_chain = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (mode == SslMode::Require && roots.is_some());
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
