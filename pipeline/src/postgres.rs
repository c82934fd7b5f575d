//! The TLS connector of every PostgreSQL connection goldthread opens: the store's
//! (`mdm::store`) and the source databases' (`connectors::driver::postgres`).

/// With `ca_file` (read from the key `key` of the configuration), connections verify the
/// server's certificate and host name; without, as libpq's `sslmode=prefer` / `require`:
/// encrypted when the server offers TLS, the certificate not verified.
pub fn tls(
    ca_file: Option<&std::path::Path>,
    key: &str,
) -> Result<postgres_native_tls::MakeTlsConnector, String> {
    let mut builder = native_tls::TlsConnector::builder();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| format!("{key}: reading {}: {error}", path.display()))?;
            let certificate = native_tls::Certificate::from_pem(&pem).map_err(|error| {
                format!(
                    "{key}: {} is not a PEM certificate: {error}",
                    path.display()
                )
            })?;
            builder.add_root_certificate(certificate);
        }
        None => {
            builder.danger_accept_invalid_certs(true);
        }
    }
    let connector = builder
        .build()
        .map_err(|error| format!("building the TLS connector: {error}"))?;
    Ok(postgres_native_tls::MakeTlsConnector::new(connector))
}
