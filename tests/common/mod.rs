//! Helpers for the integration tests: run the real binary, read its outputs and the
//! generator's ground truth.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
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
