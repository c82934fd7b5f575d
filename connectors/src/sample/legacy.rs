//! An incoming landlord for a merger: "Acorn Homes", absorbed by the sample landlord, in the
//! legacy format `config/examples/legacy-landlord.toml` maps (semicolon CSV, names as one
//! field, one-line addresses, two date formats, contractor jobs as JSON lines). Some of its
//! tenants are people the receiving landlord knows (transfers, people known to both) and
//! some of its homes are the receiving landlord's (same UPRN, the address written its own
//! way); the rest are new, with the legacy system's own noise. Its ground truth is in
//! `acorn/truth/`: which records are known to the receiving landlord (`overlap.csv`) and
//! every injected defect by rule of the default standard (`quality.csv`).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{FAMILY_NAMES, FEMALE, MALE, PLACEHOLDER_NINOS, STREET_NAMES, TOWNS, new_nino};
use crate::error::Error;

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacySummary {
    pub tenants: usize,
    pub homes: usize,
    /// Tenants who are people the receiving landlord knows, and homes that are its homes.
    pub known_tenants: usize,
    pub known_homes: usize,
    pub defects: usize,
}

/// Shares of the legacy landlord's messiness.
const KNOWN_TENANT: f64 = 0.12;
const KNOWN_HOME: f64 = 0.10;
const MISSING_DOB: f64 = 0.06;
const DEFAULT_DOB: f64 = 0.03;
const PLACEHOLDER_NINO: f64 = 0.05;
const MISSING_NINO: f64 = 0.2;
const MISSING_PHONE: f64 = 0.08;
const MISSING_UPRN: f64 = 0.2;

/// A CSV file: the legacy HMS's exports have `;` between fields, the truth files `,`.
struct Extract {
    writer: csv::Writer<std::fs::File>,
    path: std::path::PathBuf,
}

impl Extract {
    fn create(dir: &Path, name: &str, delimiter: u8, header: &[&str]) -> Result<Extract, Error> {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).map_err(|error| Error::io(&path, error))?;
        let mut extract = Extract {
            writer: csv::WriterBuilder::new()
                .delimiter(delimiter)
                .from_writer(file),
            path,
        };
        extract.row(header)?;
        Ok(extract)
    }

    fn row(&mut self, fields: &[&str]) -> Result<(), Error> {
        self.writer
            .write_record(fields)
            .map_err(|error| Error::io(&self.path, std::io::Error::other(error)))
    }

    fn finish(mut self) -> Result<(), Error> {
        self.writer
            .flush()
            .map_err(|error| Error::io(&self.path, error))
    }
}

/// Reads a CSV file the sample landlord wrote, as rows of named fields.
fn rows(path: &Path) -> Result<Vec<std::collections::BTreeMap<String, String>>, Error> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|error| Error::io(path, std::io::Error::other(error)))?;
    let headers = reader
        .headers()
        .map_err(|error| Error::io(path, std::io::Error::other(error)))?
        .clone();
    reader
        .records()
        .map(|row| {
            let row = row.map_err(|error| Error::io(path, std::io::Error::other(error)))?;
            Ok(headers
                .iter()
                .zip(row.iter())
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect())
        })
        .collect()
}

/// Writes Acorn Homes into `out` (`<data>/acorn` for the example config), `homes` homes,
/// overlapping the sample landlord already written to `receiving`.
pub fn generate_legacy(
    receiving: &Path,
    out: &Path,
    homes: usize,
    seed: u64,
) -> Result<LegacySummary, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6163_6f72_6e21);
    std::fs::create_dir_all(out.join("truth")).map_err(|error| Error::io(out, error))?;
    // People and homes the receiving landlord holds cleanly (no injected noise), and homes
    // with an asset record: those a transfer or a stock swap would bring back.
    let noise_free: BTreeSet<String> = rows(&receiving.join("truth/persons.csv"))?
        .into_iter()
        .filter(|row| row["source"] == "hms" && row["noise"].is_empty())
        .map(|row| row["source_id"].clone())
        .collect();
    let tenants = rows(&receiving.join("hms/tenants.csv"))?;
    let mut used_ninos: BTreeSet<String> =
        tenants.iter().map(|row| row["ni_number"].clone()).collect();
    let clean: Vec<&std::collections::BTreeMap<String, String>> = tenants
        .iter()
        .filter(|row| noise_free.contains(&row["person_ref"]))
        .collect();
    let with_asset: BTreeSet<String> = rows(&receiving.join("truth/properties.csv"))?
        .into_iter()
        .filter(|row| row["source"] == "asset" && !row["noise"].contains("missing_uprn"))
        .map(|row| row["property_id"].clone())
        .collect();
    let properties: Vec<std::collections::BTreeMap<String, String>> =
        rows(&receiving.join("hms/properties.csv"))?
            .into_iter()
            .zip(
                rows(&receiving.join("truth/properties.csv"))?
                    .into_iter()
                    .filter(|row| row["source"] == "hms"),
            )
            .filter(|(_, truth)| with_asset.contains(&truth["property_id"]))
            .map(|(row, _)| row)
            .filter(|row| row["flat"].is_empty())
            .collect();

    let mut summary = LegacySummary::default();
    let mut tenant_file = Extract::create(
        out,
        "TENANTS_EXPORT.csv",
        b';',
        &[
            "TENANT_NO",
            "TENANT_NAME",
            "DOB",
            "NI_NO",
            "TEL",
            "POST_CODE",
            "LAST_UPDATED",
        ],
    )?;
    let mut property_file = Extract::create(
        out,
        "PROPERTY_LIST.csv",
        b';',
        &["PROP_CODE", "UPRN", "ADDRESS", "POST_CODE", "PROP_TYPE"],
    )?;
    let mut tenancy_file = Extract::create(
        out,
        "TENANCIES.csv",
        b';',
        &["TENANCY_NO", "PROP_CODE", "TENANT_NOS", "START", "END"],
    )?;
    let mut overlap = Extract::create(
        &out.join("truth"),
        "overlap.csv",
        b',',
        &["source_id", "known_as"],
    )?;
    let mut truth = Extract::create(
        &out.join("truth"),
        "quality.csv",
        b',',
        &["rule", "source", "source_id"],
    )?;
    let mut jobs = String::new();
    let extract_day = NaiveDate::from_ymd_opt(2025, 3, 31).expect("valid date");
    for home in 0..homes {
        let prop_code = format!("AC-P{:05}", home + 1);
        // A home of the receiving landlord's (the same UPRN), or one of Acorn's own.
        let known = rng.random_bool(KNOWN_HOME) && !properties.is_empty();
        let (uprn, address, postcode, kind) = if known {
            let row = properties.choose(&mut rng).expect("non-empty");
            summary.known_homes += 1;
            overlap.row(&[&prop_code, &format!("hms:{}", row["prop_ref"])])?;
            (
                row["uprn"].clone(),
                format!(
                    "{} {}, {}",
                    row["building"],
                    row["street"].to_uppercase(),
                    row["town"]
                ),
                row["postcode"].clone(),
                row["property_type"].clone(),
            )
        } else {
            let (town, districts) = TOWNS.choose(&mut rng).expect("non-empty");
            let district = districts.choose(&mut rng).expect("non-empty");
            let street = STREET_NAMES.choose(&mut rng).expect("non-empty");
            let postcode = format!(
                "{district} {}{}{}",
                rng.random_range(1..10),
                (b'A' + rng.random_range(0..20)) as char,
                (b'A' + rng.random_range(0..20)) as char
            )
            .replace(['C', 'I', 'K', 'M', 'O', 'V'], "B");
            (
                format!("{}", 9_000_000_000u64 + home as u64),
                format!("{} {street} Lane, {town}", rng.random_range(1..200)),
                postcode,
                ["house", "bungalow", "flat"][rng.random_range(0..3)].to_string(),
            )
        };
        let uprn = if !known && rng.random_bool(MISSING_UPRN) {
            truth.row(&["property-uprn", "acorn_hms", &prop_code])?;
            String::new()
        } else {
            uprn
        };
        if !known {
            // Acorn keeps no asset register: its own homes have no asset record.
            truth.row(&["property-asset-record", "acorn_hms", &prop_code])?;
        }
        property_file.row(&[&prop_code, &uprn, &address, &postcode, &kind])?;
        summary.homes += 1;

        let mut tenant_nos = Vec::new();
        for _ in 0..rng.random_range(1..=2) {
            let tenant_no = format!("AC{:06}", summary.tenants + 1);
            summary.tenants += 1;
            let updated = (extract_day - Duration::days(rng.random_range(0..900)))
                .format("%d/%m/%Y 09:00")
                .to_string();
            let known_person = rng.random_bool(KNOWN_TENANT) && !clean.is_empty();
            let (name, dob, nino, phone) = if known_person {
                // A person the receiving landlord knows: a transfer, written Acorn's way.
                let row = clean.choose(&mut rng).expect("non-empty");
                summary.known_tenants += 1;
                overlap.row(&[&tenant_no, &format!("hms:{}", row["person_ref"])])?;
                let dob = NaiveDate::parse_from_str(&row["dob"], "%d/%m/%Y")
                    .map(|date| date.format("%d-%b-%Y").to_string())
                    .unwrap_or_default();
                (
                    format!("{}, {}", row["surname"].to_uppercase(), row["forename"]),
                    dob,
                    row["ni_number"].clone(),
                    row["phone"].clone(),
                )
            } else {
                let female = rng.random_bool(0.5);
                let given = if female { FEMALE } else { MALE }
                    .choose(&mut rng)
                    .expect("non-empty")
                    .0;
                let family = FAMILY_NAMES.choose(&mut rng).expect("non-empty");
                let born = NaiveDate::from_ymd_opt(1940, 1, 1).expect("valid date")
                    + Duration::days(rng.random_range(0..60 * 365));
                let mut dob = if rng.random_bool(0.5) {
                    born.format("%d/%m/%Y").to_string()
                } else {
                    born.format("%d-%b-%Y").to_string()
                };
                if rng.random_bool(MISSING_DOB) {
                    truth.row(&["person-date-of-birth", "acorn_hms", &tenant_no])?;
                    dob = String::new();
                } else if rng.random_bool(DEFAULT_DOB) {
                    truth.row(&["person-date-of-birth-valid", "acorn_hms", &tenant_no])?;
                    dob = "01/01/1900".into();
                }
                let nino = if rng.random_bool(PLACEHOLDER_NINO) {
                    truth.row(&["person-nino-valid", "acorn_hms", &tenant_no])?;
                    PLACEHOLDER_NINOS
                        .choose(&mut rng)
                        .expect("non-empty")
                        .to_string()
                } else if rng.random_bool(MISSING_NINO) {
                    String::new()
                } else {
                    new_nino(&mut rng, &mut used_ninos)
                };
                let phone = if rng.random_bool(MISSING_PHONE) {
                    truth.row(&["person-contact", "acorn_hms", &tenant_no])?;
                    String::new()
                } else {
                    format!("07{:09}", rng.random_range(100_000_000..1_000_000_000u64))
                };
                (
                    format!("{}, {given}", family.to_uppercase()),
                    dob,
                    nino,
                    phone,
                )
            };
            tenant_file.row(&[&tenant_no, &name, &dob, &nino, &phone, &postcode, &updated])?;
            tenant_nos.push(tenant_no);
        }
        let start = extract_day - Duration::days(rng.random_range(30..3650));
        tenancy_file.row(&[
            &format!("AC-T{:05}", home + 1),
            &prop_code,
            &tenant_nos.join(";"),
            &start.format("%d/%m/%Y").to_string(),
            "",
        ])?;
        // A contractor portal job or two per home.
        for job in 0..rng.random_range(0..3) {
            let logged = extract_day - Duration::days(rng.random_range(1..365));
            let trade = ["plumbing", "electrical", "carpentry"][rng.random_range(0..3)];
            jobs.push_str(
                &serde_json::json!({"job": {
                    "id": format!("AC-J{:05}-{job}", home + 1),
                    "property": prop_code,
                    "priority": rng.random_range(1..5),
                    "logged": format!("{} 09:30", logged.format("%d/%m/%Y")),
                    "contractor": "Acorn Maintenance",
                    "trade": trade,
                }})
                .to_string(),
            );
            jobs.push('\n');
        }
    }
    for extract in [tenant_file, property_file, tenancy_file, overlap, truth] {
        extract.finish()?;
    }
    summary.defects = rows(&out.join("truth/quality.csv"))?.len();
    let path = out.join("jobs.jsonl");
    std::fs::write(&path, jobs).map_err(|error| Error::io(&path, error))?;
    Ok(summary)
}
