//! A throwaway PostgreSQL server for tests (the binary's in `tests/`, `mdm`'s beside the
//! store). Shared by path: `#[path = "../../tests/common/postgres.rs"] mod postgres;`.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway PostgreSQL server: `initdb` into a temporary folder, started on a free port,
/// stopped (immediately) when dropped. As root, the server runs as the `postgres` user, since
/// initdb refuses root.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl Postgres {
    fn bin_dir() -> PathBuf {
        if let Ok(path) = which("initdb") {
            return path.parent().unwrap().to_path_buf();
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dirs| {
                dirs.filter_map(Result::ok)
                    .map(|dir| dir.path().join("bin"))
                    .filter(|bin| bin.join("initdb").exists())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
            .pop()
            .expect("PostgreSQL server binaries (initdb): .ci/run installs them")
    }

    fn as_server_user(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    pub fn start() -> Postgres {
        let server = Postgres::init();
        server.resume();
        server
    }

    /// A server that accepts TCP connections over TLS only (a self-signed certificate for
    /// 127.0.0.1); returns it and the certificate's PEM file, to trust as the CA.
    pub fn start_tls_only() -> (Postgres, PathBuf) {
        let server = Postgres::init();
        let data = server.dir.path().join("data");
        self_signed(
            &data.join("server.crt"),
            &data.join("server.key"),
            "127.0.0.1",
        );
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        writeln!(
            conf,
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&data)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let status = Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key"))
            .status()
            .unwrap();
        assert!(status.success());
        let ca = server.dir.path().join("ca.crt");
        std::fs::copy(data.join("server.crt"), &ca).unwrap();
        server.resume();
        (server, ca)
    }

    fn init() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("goldthread-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Postgres {
            bin: Postgres::bin_dir(),
            dir,
            port,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(server.dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = server.dir.path().join("data");
        let output = server
            .as_server_user("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(output.status.success(), "initdb: {output:?}");
        server
    }

    /// Starts the server (again, after `stop`).
    pub fn resume(&self) {
        let output = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-w", "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -c wal_level=logical -k {}",
                self.port,
                self.dir.path().display()
            ))
            .arg("start")
            .output()
            .unwrap();
        assert!(output.status.success(), "pg_ctl start: {output:?}");
    }

    /// Stops the server (fast shutdown: connections are cut), keeping its data.
    pub fn stop(&self) {
        let output = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-w", "-m", "fast", "stop"])
            .output()
            .unwrap();
        assert!(output.status.success(), "pg_ctl stop: {output:?}");
    }

    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database; returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.query(&format!("CREATE DATABASE {name}"));
        self.url_of(name)
    }

    /// Runs SQL with psql as `user`; returns (success, stdout, stderr).
    pub fn psql(&self, user: &str, sql: &str) -> (bool, String, String) {
        self.psql_in("postgres", user, sql)
    }

    /// psql as the superuser in `database`, failing on error.
    pub fn query_in(&self, database: &str, sql: &str) -> String {
        let (ok, out, err) = self.psql_in(database, "postgres", sql);
        assert!(ok, "{sql}: {err}");
        out
    }

    pub fn psql_in(&self, database: &str, user: &str, sql: &str) -> (bool, String, String) {
        let output = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user])
            .args(["-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    }

    /// psql as the superuser, failing on error.
    pub fn query(&self, sql: &str) -> String {
        let (ok, out, err) = self.psql("postgres", sql);
        assert!(ok, "{sql}: {err}");
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|path| path.is_file())
        })
        .ok_or(())
}

/// Writes a self-signed certificate for `name` (an IP address is also its subject
/// alternative name) and its key.
pub fn self_signed(cert: &Path, key: &Path, name: &str) {
    let mut command = Command::new("openssl");
    command.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ]);
    command.args(["-subj", &format!("/CN={name}")]);
    if name.parse::<std::net::IpAddr>().is_ok() {
        command.args(["-addext", &format!("subjectAltName=IP:{name}")]);
    }
    let output = command
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl: {output:?}");
}
