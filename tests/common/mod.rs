//! Helpers for the integration tests: run the real binary, read its outputs and the
//! generator's ground truth.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod browser;
mod postgres;
#[allow(unused_imports)]
pub use browser::Browser;
pub use postgres::{Postgres, self_signed, which};

pub fn goldthread() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goldthread"))
}

/// Runs the binary to completion and fails with its output if it failed.
pub fn run_ok(args: &[&str]) -> Output {
    let output = goldthread().args(args).output().expect("the binary starts");
    assert!(
        output.status.success(),
        "goldthread {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn generate(dir: &Path, homes: usize, seed: u64) {
    let homes = homes.to_string();
    let seed = seed.to_string();
    run_ok(&[
        "generate",
        "--homes",
        &homes,
        "--years",
        "1",
        "--seed",
        &seed,
        "--out",
        dir.to_str().unwrap(),
    ]);
}

/// `run --once` over `data` with the built-in config; returns the parsed summary.json.
pub fn run_once(data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "run",
        "--once",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// Every row of a CSV file as a map from header to value.
pub fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    read_csv_with(path, b',')
}

/// `read_csv` for a file with another field delimiter.
pub fn read_csv_with(path: &Path, delimiter: u8) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

pub fn data_rows(path: &Path) -> u64 {
    if path.extension().is_some_and(|ext| ext == "csv") {
        read_csv(path).len() as u64
    } else {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count() as u64
    }
}

/// The value of one KPI in a summary.
pub fn kpi(summary: &serde_json::Value, name: &str) -> serde_json::Value {
    summary["kpis"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["kpi"] == name)
        .unwrap_or_else(|| panic!("no KPI {name}"))
        .clone()
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            paths.extend(walk(&path));
        } else {
            paths.push(path);
        }
    }
    paths.sort();
    paths
}

/// A plain HTTP/1.1 request with an optional bearer token and JSON body: (status, body).
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let content = body
        .map(|body| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
        })
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}{content}Connection: close\r\n\r\n{}",
        body.unwrap_or("")
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A served `goldthread run` that has printed its address and finished its first pass:
/// (the process, `host:port`, the `ready:` line, the rest of its stdout).
pub fn serve(command: &mut Command) -> (Running, String, String, Box<dyn Iterator<Item = String>>) {
    use std::io::{BufRead, BufReader};
    let child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let mut lines = BufReader::new(running.0.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap);
    let address = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("listening on http://")
                .map(str::to_string)
        })
        .expect("the listen address is printed");
    let ready = lines
        .by_ref()
        .find(|line| line.starts_with("ready:"))
        .expect("ready is printed");
    (running, address, ready, Box::new(lines))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_listener(address: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while TcpStream::connect(address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {address}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A standalone Kafka-protocol broker (tansu, in-memory storage) on a free loopback port,
/// stopped when dropped. `tests/run` installs tansu when it is absent; `GOLDTHREAD_TANSU`
/// names the binary, else it is looked up on PATH and in `~/.cargo/bin`.
pub struct Broker {
    process: std::process::Child,
    pub address: String,
    binary: PathBuf,
    /// The TLS proxy in front of the broker (`start_behind_tls`), with the CA clients trust.
    /// The TLS proxy in front (dropped, it is killed) and its certificate's folder.
    tls: Option<(Running, tempfile::TempDir)>,
}

impl Broker {
    pub fn start() -> Broker {
        let address = format!("127.0.0.1:{}", free_port());
        Broker::start_advertising(&address, &address)
    }

    /// A broker that clients reach over TLS only: socat terminates TLS on `address` and
    /// forwards to tansu on a port of its own, which advertises `address` in its metadata.
    /// tansu 0.6's own TLS cannot be switched on from its command line (its `--cert` and
    /// `--key` are declared mutually exclusive).
    pub fn start_behind_tls() -> (Broker, PathBuf) {
        let address = format!("127.0.0.1:{}", free_port());
        let inner = format!("127.0.0.1:{}", free_port());
        let mut broker = Broker::start_advertising(&inner, &address);
        broker.address = address.clone();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("broker.crt"), dir.path().join("broker.key"));
        self_signed(&cert, &key, "127.0.0.1");
        let port = address.rsplit(':').next().unwrap();
        let proxy = tls_proxy(port, &inner, &cert, &key);
        broker.tls = Some((proxy, dir));
        (broker, cert)
    }

    fn start_advertising(listen: &str, advertised: &str) -> Broker {
        let binary = std::env::var_os("GOLDTHREAD_TANSU")
            .map(PathBuf::from)
            .or_else(|| which("tansu").ok())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".cargo/bin/tansu"))
                    .filter(|path| path.is_file())
            })
            .expect("tansu is not installed: run tests/run, which installs it (cargo install tansu --locked --features dynostore)");
        let process = Command::new(&binary)
            .args(["broker", "--storage-engine=memory://tansu/"])
            .args(["--listener-url", &format!("tcp://{listen}")])
            .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu starts");
        wait_for_listener(listen, "tansu");
        Broker {
            process,
            address: listen.to_string(),
            binary,
            tls: None,
        }
    }

    /// The built-in configuration pointed at this broker, ending with its
    /// `[kafka.properties]` table (more properties can be appended). It holds one record per
    /// produced batch: tansu 0.6 answers a fetch from an offset inside a record batch with
    /// the batches after it, so a consumer resuming mid-batch (after a restart or a
    /// rebalance) would skip the rest of that batch. Kafka returns the whole batch and the
    /// client skips what it has read. The two-process test lost the rest of a batch at
    /// hand-overs without this.
    pub fn config(&self) -> String {
        include_str!("../../config/default.toml").replace(
            "# bootstrap_servers = \"localhost:9092\"",
            &format!("bootstrap_servers = \"{}\"", self.address),
        ) + "\n[kafka.properties]\n\"batch.num.messages\" = \"1\"\n"
    }

    /// Freezes the broker process (SIGSTOP): connections stay open and nothing answers, as
    /// when a broker hangs or the network drops; `resume` thaws it with its data intact.
    pub fn pause(&self) {
        signal(self.process.id(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.process.id(), "-CONT");
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let output = Command::new(&self.binary)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.address)])
            .output()
            .unwrap();
        assert!(output.status.success(), "tansu topic create: {output:?}");
    }

    /// Produces `key\tvalue` lines with kcat, an independent client (an empty value is a
    /// tombstone).
    pub fn produce(&self, topic: &str, lines: &[String]) {
        let mut child = Command::new("kcat")
            .args(["-P", "-b", &self.address, "-t", topic, "-K", "\t", "-Z"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("kcat runs (tests/run installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all((lines.join("\n") + "\n").as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "kcat");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.tls = None;
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Serves `run` with `config` over `data` into database `database` of `pg`, and kills it with
/// SIGKILL as soon as its first batch has committed (`goldthread.consumed` has a row).
pub fn run_killed_after_first_commit(pg: &Postgres, database: &str, config: &str, data: &Path) {
    let mut running = Running(
        goldthread()
            .args([
                "run",
                "--config",
                config,
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--postgres",
                &pg.url_of(database),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no batch reached PostgreSQL"
        );
        let (ok, count, _) = pg.psql_in(
            database,
            "postgres",
            "SELECT count(*) FROM goldthread.consumed",
        );
        if ok && count.parse::<u64>().unwrap_or(0) > 0 {
            running.0.kill().unwrap();
            running.0.wait().unwrap();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// TOML for a contractor token (`GOLDTHREAD_CONTRACTOR_A_TOKEN`) and its webhook
/// `contractor_a` (system `repairs`, message ids in `messageId`), ending with `mapping`: the
/// rest of the webhook's table (a `[webhooks.mapping]`, or a `type_field` and messages).
pub fn contractor_webhook(mapping: &str) -> String {
    r#"
[[http.tokens]]
name = "contractor_a"
role = "contractor"
secret_env = "GOLDTHREAD_CONTRACTOR_A_TOKEN"

[[webhooks]]
name = "contractor_a"
system = "repairs"
tokens = ["contractor_a"]
message_id = "messageId"
"#
    .to_string()
        + mapping
}

/// `contractor_webhook` taking one message shape: `{"messageId", "job", "status",
/// "statusAt"}` as a work order update.
pub fn contractor_job_updates() -> String {
    contractor_webhook(
        r#"[webhooks.mapping]
entity = "work_order_update"
id = "messageId"
fields = { work_order_ref = "job", status = "status", status_at = "statusAt" }
"#,
    )
}

/// The built-in config plus `contractor_webhook` taking a JobStatusUpdate (types in
/// `messageType`) as `job_status_update` (the TOML of its mapping: `entity`, `id`,
/// `fields`), written to `dir/webhook.toml`.
pub fn config_with_contractor_webhook(dir: &Path, job_status_update: &str) -> PathBuf {
    let config = dir.join("webhook.toml");
    std::fs::write(
        &config,
        include_str!("../../config/default.toml").replace(
            "allow_volatile_acknowledgements = false",
            "allow_volatile_acknowledgements = true",
        ) + &contractor_webhook(
            &("type_field = \"messageType\"\n[webhooks.messages.JobStatusUpdate]\n".to_string()
                + job_status_update),
        ),
    )
    .unwrap();
    config
}

/// Every table a run derives, with the columns that do not record when it ran.
pub const DERIVED: &[&str] = &[
    "goldthread.golden_person",
    "goldthread.golden_property",
    "goldthread.xref",
    "goldthread.tenancy",
    "goldthread.match_decision",
    "goldthread.review_queue",
    "goldthread.vulnerability",
    "goldthread.redirect",
    "goldthread.steward_verdict",
    "(SELECT kind, source, source_id FROM goldthread.source_record)",
    "(SELECT entity, source, source_id, golden_id FROM goldthread.xref_history WHERE valid_to IS NULL)",
];

pub fn checksums_in(pg: &Postgres, database: &str) -> Vec<String> {
    DERIVED
        .iter()
        .map(|table| {
            pg.query_in(
                database,
                &format!(
                    "SELECT '{}: ' || count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t",
                    table.replace('\'', "")
                ),
            )
        })
        .collect()
}

/// Waits (up to `seconds`) until `check` holds; fails naming `what`.
pub fn wait_for(what: &str, seconds: u64, check: &dyn Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// socat terminating TLS on `port` (127.0.0.1) with `cert` and `key`, forwarding to `target`.
pub fn tls_proxy(port: &str, target: &str, cert: &Path, key: &Path) -> Running {
    let proxy = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            cert.display(),
            key.display()
        ))
        .arg(format!("TCP:{target}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat starts (tests/run installs it)");
    wait_for_listener(&format!("127.0.0.1:{port}"), "socat");
    Running(proxy)
}

/// `config` (TOML) with the HMS tenants read from the Debezium topic `topic` instead of
/// their CSV export (same columns, same mapping).
pub fn with_debezium_tenants(config: &str, topic: &str) -> String {
    let mut config: toml::Table = config.parse().unwrap();
    let sources = config["sources"].as_array_mut().unwrap();
    let at = sources
        .iter()
        .position(|source| source["name"].as_str() == Some("hms_tenants"))
        .unwrap();
    let tenants = sources.remove(at);
    let mut debezium = toml::Table::new();
    debezium.insert("name".into(), "hms_tenants_cdc".into());
    debezium.insert("system".into(), "hms".into());
    debezium.insert("topics".into(), vec![toml::Value::from(topic)].into());
    debezium.insert("date_formats".into(), tenants["date_formats"].clone());
    debezium.insert("mapping".into(), tenants["mapping"].clone());
    config.insert("debezium".into(), vec![toml::Value::Table(debezium)].into());
    toml::to_string(&config).unwrap()
}

/// The tenants export as Debezium change events (`op` r, with the JSON converter's schema
/// wrapper on every other one), keyed by tenant, as kcat reads them (`key<TAB>value`).
pub fn tenants_as_change_events(data: &Path) -> Vec<String> {
    read_csv(&data.join("hms/tenants.csv"))
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let after: serde_json::Map<String, serde_json::Value> = row
                .iter()
                .map(|(column, value)| (column.clone(), value.clone().into()))
                .collect();
            let change = serde_json::json!({
                "before": null, "after": after, "op": "r",
                "source": {"connector": "sqlserver", "db": "hmsdb", "table": "tenants", "ts_ms": 1_735_689_600_000_i64},
                "ts_ms": 1_735_689_600_123_i64,
            });
            let value = if index % 2 == 0 {
                serde_json::json!({"schema": {"type": "struct", "name": "hmsdb.dbo.tenants.Envelope"}, "payload": change})
            } else {
                change
            };
            format!("{}\t{value}", row["person_ref"])
        })
        .collect()
}

/// A config reading a legacy landlord's tenants (system `acorn`, columns `person_ref`,
/// `forename`, `surname`, `dob`) from `path` under the config's folder; `extra` goes into the
/// `[[sources]]` table (`watch = "200ms"`).
pub fn legacy_tenants_config(path: &str, extra: &str) -> String {
    format!(
        r#"
data_dir = "."

[[sources]]
name = "legacy_{name}"
system = "acorn"
path = "{path}"
format = "csv"
{extra}
[sources.mapping]
entity = "person"
id = "person_ref"
fields = {{ given_name = "forename", family_name = "surname", date_of_birth = "dob" }}
"#,
        name = if path.contains('*') {
            "drops"
        } else {
            "tenants"
        },
    )
}

/// Waits until the instance at `address` holds the last HMS tenant of `data` (`token`: a
/// steward's or above) and is ready.
pub fn wait_for_the_last_tenant(address: &str, token: &str, data: &Path, seconds: u64) {
    let last = read_csv(&data.join("hms/tenants.csv")).last().unwrap()["person_ref"].clone();
    let path = format!("/api/xref/hms/{last}");
    wait_for("the last tenant's change to be applied", seconds, &|| {
        request(address, "GET", &path, Some(token), None).0 == 200
    });
    wait_for("ready", seconds, &|| {
        request(address, "GET", "/ready", None, None).0 == 200
    });
}
