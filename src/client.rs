//! `goldthread steward …` and `goldthread erase`: a running instance's API from the command
//! line, so every action goes through the live engine, its role checks and its audit.

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The running instance (`goldthread run`).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "GOLDTHREAD_URL"
    )]
    url: String,
    /// Environment variable holding the API token (never a flag: flags show in `ps`).
    #[arg(long, global = true, default_value = "GOLDTHREAD_TOKEN")]
    token_env: String,
    /// With an `https://` URL: a PEM certificate to trust besides the system's (a
    /// self-signed one in front of the API).
    #[arg(long, global = true, env = "GOLDTHREAD_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum StewardCommand {
    /// The review queue: pairs between the thresholds and ambiguous links, strongest first.
    Review {
        /// Print the full JSON, explanations included.
        #[arg(long)]
        json: bool,
    },
    /// Accept (`same`) or reject (`different`) a pair, or `withdraw` an earlier verdict.
    Decide {
        /// A source record, `system:id`.
        a: String,
        /// The other source record, `system:id`.
        b: String,
        #[arg(value_parser = ["same", "different", "withdraw"])]
        verdict: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "person", value_parser = ["person", "property"])]
        entity: String,
    },
    /// Take a record out of its golden record (undo a merge).
    Split {
        /// The source record, `system:id`.
        record: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "person", value_parser = ["person", "property"])]
        entity: String,
    },
    /// Every steward action so far (admin token).
    Audit,
}

fn record(text: &str) -> anyhow::Result<Value> {
    let (system, id) = text
        .split_once(':')
        .with_context(|| format!("`{text}`: a source record is `system:id`, e.g. hms:T000123"))?;
    Ok(json!({"system": system, "id": id}))
}

pub async fn steward(connection: &Connection, command: StewardCommand) -> anyhow::Result<()> {
    let response = match &command {
        StewardCommand::Review { .. } => connection.call("GET", "/api/review", None).await?,
        StewardCommand::Decide {
            a,
            b,
            verdict,
            reason,
            entity,
        } => {
            let body = json!({"entity": entity, "a": record(a)?, "b": record(b)?,
                              "verdict": verdict, "reason": reason});
            connection
                .call("POST", "/api/steward/decisions", Some(body))
                .await?
        }
        StewardCommand::Split {
            record: reference,
            reason,
            entity,
        } => {
            let body = json!({"entity": entity, "record": record(reference)?, "reason": reason});
            connection
                .call("POST", "/api/steward/splits", Some(body))
                .await?
        }
        StewardCommand::Audit => connection.call("GET", "/api/steward/audit", None).await?,
    };
    match command {
        StewardCommand::Review { json: false } => print!("{}", review_table(&response)),
        _ => println!("{}", serde_json::to_string_pretty(&response)?),
    }
    Ok(())
}

/// `goldthread erase`: puts a person beyond use through the running instance.
pub async fn erase(connection: &Connection, subject: &str, reason: &str) -> anyhow::Result<()> {
    let response = connection
        .call(
            "POST",
            "/api/admin/erasures",
            Some(json!({"subject": subject, "reason": reason})),
        )
        .await?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}

fn review_table(items: &Value) -> String {
    let mut text = format!(
        "{:<24} {:<24} {:>11}  {}\n",
        "record a", "record b", "probability", "golden ids"
    );
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    for item in items {
        let reference = |side: &str| {
            format!(
                "{}:{}",
                item[side]["allocated_by"].as_str().unwrap_or("?"),
                item[side]["id"].as_str().unwrap_or("?")
            )
        };
        text.push_str(&format!(
            "{:<24} {:<24} {:>11.4}  {} / {}\n",
            reference("a"),
            reference("b"),
            item["score"]["probability"].as_f64().unwrap_or(f64::NAN),
            item["golden_a"].as_str().unwrap_or("?"),
            item["golden_b"].as_str().unwrap_or("?"),
        ));
    }
    text.push_str(&format!(
        "{} pairs; decide with `goldthread steward decide A B same|different --reason ...`\n",
        items.len()
    ));
    text
}

/// `goldthread kpi --url`: the KPI suite from a running instance.
pub async fn kpis(
    connection: &Connection,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> anyhow::Result<sql::KpiTable> {
    let mut query = Vec::new();
    if let Some(from) = from {
        query.push(format!("from={from}"));
    }
    if let Some(to) = to {
        query.push(format!("to={to}"));
    }
    let path = format!("/api/kpis?{}", query.join("&"));
    let answer = connection.call("GET", &path, None).await?;
    serde_json::from_value(answer).with_context(|| format!("GET {path}: not a KPI table"))
}

impl Connection {
    pub fn new(url: String, token_env: String, ca_file: Option<std::path::PathBuf>) -> Connection {
        Connection {
            url,
            token_env,
            ca_file,
        }
    }

    /// One request; the parsed JSON answer, or the server's message as the error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let token = std::env::var(&self.token_env)
            .with_context(|| format!("set {} to an API token (see http.tokens)", self.token_env))?;
        let uri: hyper::Uri = format!("{}{path}", self.url.trim_end_matches('/'))
            .parse()
            .with_context(|| format!("--url {}: not a URL", self.url))?;
        let host = uri.host().context("--url: no host")?.to_string();
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        match uri.scheme_str() {
            Some("https") => {}
            // The token would cross the network in clear.
            Some("http") if loopback => {}
            Some("http") => bail!(
                "--url {}: use https:// for a remote instance (the token would travel in clear); http:// only to this machine",
                self.url
            ),
            _ => bail!("--url {}: an http:// or https:// URL", self.url),
        }
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let authorization = format!("Bearer {token}");
        let (status, bytes) = send(
            &uri,
            method,
            &[(hyper::header::AUTHORIZATION, authorization.as_str())],
            body,
            self.ca_file.as_deref(),
        )
        .await
        .with_context(|| format!("{method} {} (is `goldthread run` serving?)", self.url))?;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", text.trim());
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
    }
}

/// One JSON request to `uri` (`http://` or `https://`, trusting `ca_file` besides the
/// system's CAs): the status and the body.
pub async fn send(
    uri: &hyper::Uri,
    method: &str,
    headers: &[(hyper::header::HeaderName, &str)],
    body: String,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let host = uri.host().context("no host")?.to_string();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    if https {
        let mut builder = native_tls::TlsConnector::builder();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            builder.add_root_certificate(
                native_tls::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", path.display()))?,
            );
        }
        let connector = tokio_native_tls::TlsConnector::from(builder.build()?);
        let stream = connector
            .connect(host.trim_matches(['[', ']']), stream)
            .await
            .with_context(|| format!("TLS with {host}"))?;
        exchange(stream, request).await
    } else {
        exchange(stream, request).await
    }
}

/// Sends one request over `stream` (plain or TLS): the status and the body.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    // Ends with the exchange: dropping `sender` closes the connection.
    let driving = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    drop(sender);
    let _ = driving.await;
    Ok((status, bytes))
}
