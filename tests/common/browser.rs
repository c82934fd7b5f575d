//! A WebDriver session on Debian's chromium (headless) through chromedriver, for the tests
//! of the pages goldthread serves and writes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Running;

/// One WebDriver request. chromedriver keeps the connection open after `Connection:
/// close`, so the body is read by its Content-Length.
pub fn webdriver(address: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).unwrap();
    (status, String::from_utf8(answer).unwrap())
}

/// A WebDriver session on Debian's chromium through chromedriver, closed when dropped.
pub struct Browser {
    driver: Running,
    address: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let chromedriver = std::env::var_os("GOLDTHREAD_CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
        assert!(
            chromedriver.is_file(),
            "{} is missing: run tests/run, which installs chromium and chromium-driver",
            chromedriver.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Running(
            std::process::Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("GOLDTHREAD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1400,1800",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let (status, body) = webdriver(
            &address,
            "POST",
            "/session",
            Some(&capabilities.to_string()),
        );
        assert_eq!(status, 200, "{body}");
        let session =
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["value"]["sessionId"]
                .as_str()
                .unwrap()
                .to_string();
        Browser {
            driver,
            address,
            session,
            _profile: profile,
        }
    }

    pub fn command(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let path = format!("/session/{}{path}", self.session);
        let body = body.to_string();
        let (status, answer) = webdriver(
            &self.address,
            method,
            &path,
            (method == "POST").then_some(body.as_str()),
        );
        assert_eq!(status, 200, "{method} {path}: {answer}");
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["value"].clone()
    }

    pub fn script(&self, script: &str) -> serde_json::Value {
        self.command(
            "POST",
            "/execute/sync",
            serde_json::json!({"script": script, "args": []}),
        )
    }

    /// Waits until `script` returns something for which `done` holds; returns it.
    pub fn wait_for(
        &self,
        script: &str,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.script(script);
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting: {script} = {value}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = webdriver(&self.address, "DELETE", &path, None);
        let _ = &self.driver;
    }
}
