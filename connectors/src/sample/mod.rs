//! The sample landlord: `goldthread generate` writes what a landlord's systems export (HMS,
//! repairs feed, CRM, asset register) with DOMAIN.md §3's messiness injected at configurable
//! rates, plus a `truth/` folder the product never reads. Same arguments, same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

use crate::error::Error;

mod homes;
mod jobs;
pub mod legacy;
mod people;
pub mod repairs;

/// Rates of the injected messiness and of the repair outcomes. Every rate is a probability.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    /// Share of HMS tenants who also appear in the CRM under a contact id of its own.
    pub crm_coverage: f64,
    /// CRM contacts who are not in the HMS at all (applicants), as a share of CRM contacts.
    pub crm_only: f64,
    /// A CRM given name written as a nickname (Bob for Robert).
    pub nickname: f64,
    /// A CRM name with one typing error.
    pub typo: f64,
    /// A CRM name written `SURNAME, Given`.
    pub name_swap: f64,
    /// An HMS forename field holding the title too (`Mrs Ann`).
    pub title_in_name: f64,
    /// A CRM date of birth with day and month swapped.
    pub dob_swap: f64,
    /// A date of birth replaced by a default (1900-01-01) in either system.
    pub default_dob: f64,
    /// A CRM contact with no date of birth.
    pub missing_dob: f64,
    /// An HMS NINO replaced by a placeholder (QQ123456C, TN...).
    pub placeholder_nino: f64,
    /// An HMS NINO left empty.
    pub missing_nino: f64,
    /// An HMS person entered twice under two person refs.
    pub hms_duplicate: f64,
    /// An asset record without its UPRN.
    pub missing_uprn: f64,
    /// Households of adult twins (same surname, date of birth, address, phone).
    pub twins: f64,
    /// Homes void at extract time (void works only).
    pub void_homes: f64,
    /// No access at a visit when a reminder was sent / when none was.
    pub no_access_reminded: f64,
    pub no_access_not_reminded: f64,
    /// An appointment missed by the landlord or contractor.
    pub landlord_missed: f64,
    /// An appointment cancelled by the resident before the slot.
    pub resident_cancelled: f64,
    /// A visit that attended but could not complete the job (parts, wrong trade).
    pub kept_not_completed: f64,
    /// A reminder sent before an appointment.
    pub reminder: f64,
    /// A resident no-access recorded with the full evidence (arrival in slot, calls, card).
    pub no_access_verified: f64,
    /// A work order cancelled before any visit.
    pub cancelled_work_order: f64,
    /// A tenancy that ends during the data: the home is void from the day after, and its
    /// repairs from then on are void works.
    pub tenancy_ends: f64,
    /// A work order whose priority is changed after it was raised (raised or lowered, before
    /// or after the target of the reported priority): a second version of the order.
    pub priority_change: f64,
    /// A repair whose trade is damp and mould (an Awaab's Law significant hazard).
    pub damp_and_mould: f64,
    /// A visit aborted on site (safety), by the operative's side.
    pub aborted_visit: f64,
    /// A resident no-access recorded with part of the evidence (arrival and card, no contact
    /// attempt; or calls and card, no arrival time): unverified.
    pub partial_evidence: f64,
    /// A repair at a void home recorded as responsive work (not void works).
    pub responsive_on_void: f64,
    /// A work order raised without a repair request (an operative's or an inspector's
    /// find): its clock starts when it is raised.
    pub no_request: f64,
    /// An emergency made safe, with the remaining work raised as a follow-on order (its own
    /// clock, `parentWorkOrderRef`, `followOnWorkOrderReference` on the completion).
    pub follow_on: f64,
    /// A message delivered twice.
    pub duplicate_message: f64,
    /// A repair request or appointment booking delivered up to three days late (after the
    /// work order or the visit it belongs to).
    pub late_message: f64,
    /// A visit outcome first recorded wrongly (a no-access without evidence) and corrected
    /// by a second message.
    pub corrected_outcome: f64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            crm_coverage: 0.75,
            crm_only: 0.05,
            nickname: 0.12,
            typo: 0.04,
            name_swap: 0.03,
            title_in_name: 0.08,
            dob_swap: 0.03,
            default_dob: 0.02,
            missing_dob: 0.05,
            placeholder_nino: 0.04,
            missing_nino: 0.10,
            hms_duplicate: 0.01,
            missing_uprn: 0.08,
            twins: 0.01,
            void_homes: 0.03,
            no_access_reminded: 0.07,
            no_access_not_reminded: 0.14,
            landlord_missed: 0.015,
            resident_cancelled: 0.02,
            kept_not_completed: 0.10,
            reminder: 0.85,
            no_access_verified: 0.7,
            cancelled_work_order: 0.03,
            tenancy_ends: 0.08,
            priority_change: 0.04,
            damp_and_mould: 0.06,
            aborted_visit: 0.01,
            partial_evidence: 0.1,
            responsive_on_void: 0.1,
            no_request: 0.03,
            follow_on: 0.25,
            duplicate_message: 0.01,
            late_message: 0.02,
            corrected_outcome: 0.01,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub homes: usize,
    pub years: u32,
    pub seed: u64,
    /// First day of the data; the extract is taken `years` later.
    pub start: NaiveDate,
    pub noise: NoiseConfig,
}

impl GenerateOptions {
    pub fn new(homes: usize, years: u32, seed: u64) -> Self {
        GenerateOptions {
            homes,
            years,
            seed,
            start: NaiveDate::from_ymd_opt(2024, 4, 1).expect("valid date"),
            noise: NoiseConfig::default(),
        }
    }
}

/// Counts of what was written, for the command's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    pub files: BTreeMap<String, usize>,
    pub true_persons: usize,
    pub true_properties: usize,
}

const TOWNS: &[(&str, &[&str])] = &[
    ("Leeds", &["LS6", "LS11", "LS14"]),
    ("Bradford", &["BD3", "BD5"]),
    ("Wakefield", &["WF1", "WF2"]),
    ("Halifax", &["HX1"]),
];
const STREET_NAMES: &[&str] = &[
    "High",
    "Mill",
    "Church",
    "Station",
    "Victoria",
    "Albert",
    "Park",
    "Queens",
    "Kings",
    "York",
    "Chapel",
    "Manor",
    "Oak",
    "Elm",
    "Ash",
    "Beech",
    "Willow",
    "Meadow",
    "Green",
    "Spring",
    "Bank",
    "Moor",
    "Castle",
    "Brook",
    "Hill",
    "Cross",
    "Marsh",
    "Granville",
    "Clarendon",
    "Holly",
    "St Mary's",
    "St John's",
    "Wharf",
    "Canal",
    "Fountain",
    "Garden",
    "Cemetery",
    "Woodhouse",
];
const STREET_TYPES: &[(&str, &str)] = &[
    ("Street", "St"),
    ("Road", "Rd"),
    ("Avenue", "Ave"),
    ("Close", "Cl"),
    ("Crescent", "Cres"),
    ("Lane", "Ln"),
    ("Drive", "Dr"),
    ("Terrace", "Terr"),
];
/// Given names with their nicknames (the first nickname is the one a CRM uses).
const FEMALE: &[(&str, &[&str])] = &[
    ("Margaret", &["Peggy", "Maggie"]),
    ("Elizabeth", &["Liz", "Beth", "Betty"]),
    ("Alexandra", &["Sandy"]),
    ("Catherine", &["Kate", "Cathy"]),
    ("Susan", &["Sue"]),
    ("Patricia", &["Pat", "Trish"]),
    ("Jennifer", &["Jenny"]),
    ("Deborah", &["Debbie"]),
    ("Rebecca", &["Becky"]),
    ("Amira", &[]),
    ("Chloe", &[]),
    ("Grace", &[]),
    ("Olivia", &[]),
    ("Priya", &[]),
    ("Siobhan", &[]),
    ("Zofia", &[]),
    ("Aisha", &[]),
    ("Joanne", &["Jo"]),
    ("Hannah", &[]),
    ("Emily", &[]),
];
const MALE: &[(&str, &[&str])] = &[
    ("Robert", &["Bob", "Rob", "Bobby"]),
    ("William", &["Bill", "Will", "Liam"]),
    ("John", &["Jack"]),
    ("Henry", &["Harry"]),
    ("Alexander", &["Sandy", "Alex"]),
    ("Michael", &["Mick", "Mike"]),
    ("Anthony", &["Tony"]),
    ("Richard", &["Dick", "Rick"]),
    ("James", &["Jim", "Jimmy"]),
    ("Edward", &["Ted", "Eddie"]),
    ("Mohammed", &[]),
    ("Tomasz", &[]),
    ("Connor", &[]),
    ("Kwame", &[]),
    ("Declan", &[]),
    ("Oliver", &[]),
    ("Samuel", &["Sam"]),
    ("Daniel", &["Dan", "Danny"]),
    ("Peter", &["Pete"]),
    ("Stephen", &["Steve"]),
];
const FAMILY_NAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Thomas",
    "Clarke",
    "Jackson",
    "Wood",
    "Harris",
    "Edwards",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Hughes",
    "Moore",
    "Clark",
    "King",
    "Harrison",
    "Lewis",
    "Baker",
    "Lee",
    "Allen",
    "Morris",
    "Khan",
    "Scott",
    "Watson",
    "Davis",
    "Parker",
    "James",
    "Bennett",
    "Young",
    "Phillips",
    "Richardson",
    "Mitchell",
    "O'Brien",
    "O'Connor",
    "McDonald",
    "MacDonald",
    "McCarthy",
    "Smith-Jones",
    "Ahmed",
    "Hussain",
    "Begum",
    "Ali",
    "Nowak",
    "Kowalski",
    "Okafor",
    "Mensah",
    "Nguyen",
    "Singh",
    "Kaur",
    "Murphy",
    "Kelly",
    "Doyle",
    "Fitzgerald",
    "Lloyd",
    "Price",
    "Morgan",
    "Owen",
    "Pryce-Jones",
    "Whitehead",
    "Ashworth",
    "Sutcliffe",
    "Haigh",
];
const CONTRACTORS: &[&str] = &[
    "Northern Building Services",
    "Aire Valley Maintenance",
    "Pennine Property Care",
    "In-house DLO",
];
const TRADES: &[&str] = &[
    "plumbing",
    "electrical",
    "carpentry",
    "roofing",
    "gas",
    "plastering",
    "general",
];
const VULNERABILITY_CODES: &[(&str, &str)] = &[
    ("20-01", "Physical disability"),
    ("20-02", "Sensory impairment"),
    ("21", "Mental health"),
    ("30", "Regularly misses appointments"),
    ("40", "Hoarding"),
];
const PLACEHOLDER_NINOS: &[&str] = &[
    "QQ123456C",
    "AB123456C",
    "TN010180F",
    "PP999999P",
    "AA000000A",
];
/// HACT priority codes with their share of responsive repairs.
const PRIORITIES: &[(i64, &str, f64)] = &[
    (1, "Immediate", 0.02),
    (2, "Emergency", 0.16),
    (3, "Urgent", 0.20),
    (4, "Normal", 0.59),
    (5, "Inspection", 0.03),
];
/// Weekday appointment slots: name, start, end (local times, written as UTC). Emergencies get
/// an `emergency` window of 24 hours from when the work order was raised.
const SLOTS: &[(&str, u32, u32)] = &[
    ("am", 8, 12),
    ("pm", 12, 17),
    ("all_day", 8, 17),
    ("school_run", 9, 14),
];

#[derive(Debug, Clone)]
struct Property {
    id: String,
    hms_ref: String,
    uprn: String,
    parent_uprn: Option<String>,
    /// Flat number or letter.
    saon: Option<String>,
    /// Building number, with its suffix letter if it has one (`14A`).
    paon: String,
    street: (String, usize),
    town: &'static str,
    postcode: String,
    property_type: &'static str,
    is_home: bool,
}

impl Property {
    fn street_full(&self) -> String {
        format!("{} {}", self.street.0, STREET_TYPES[self.street.1].0)
    }
    fn street_short(&self) -> String {
        format!("{} {}", self.street.0, STREET_TYPES[self.street.1].1)
    }
}

#[derive(Debug, Clone)]
struct Person {
    id: String,
    female: bool,
    given: usize,
    middle: Option<usize>,
    family: String,
    dob: NaiveDate,
    nino: String,
    phone: String,
    email: Option<String>,
}

impl Person {
    fn names(&self) -> &'static [(&'static str, &'static [&'static str])] {
        if self.female { FEMALE } else { MALE }
    }
    fn given_name(&self) -> &'static str {
        self.names()[self.given].0
    }
    fn title(&self, rng: &mut ChaCha8Rng) -> &'static str {
        if self.female {
            ["Mrs", "Ms", "Miss"].choose(rng).copied().unwrap_or("Ms")
        } else {
            "Mr"
        }
    }
}

/// One message of the repairs feed, ordered by its time then its sequence number.
struct Message {
    /// When the message reaches the feed (its place in the file).
    at: DateTime<Utc>,
    sequence: usize,
    body: serde_json::Value,
}

/// Where a work order comes from.
enum Origin {
    /// A tenant's report on a day (or, now and then, an order raised without one).
    Report(NaiveDate),
    /// The remaining work after an emergency was made safe: raised then, with its own clock.
    FollowOn {
        reference: String,
        parent: String,
        raised_at: DateTime<Utc>,
        trade: &'static str,
        contractor: &'static str,
    },
}

struct Generator {
    rng: ChaCha8Rng,
    /// Draws for the cases added after the first release (ended tenancies, priority changes,
    /// damp and mould, aborted visits, partial evidence), apart from `rng` so that adding a
    /// case leaves the people, homes and other repairs of a seed as they were.
    cases: ChaCha8Rng,
    options: GenerateOptions,
    end: NaiveDate,
    next_id: BTreeMap<&'static str, usize>,
    used_ninos: std::collections::BTreeSet<String>,
}

/// Writes the sample landlord under `out` (created if absent) and returns what it wrote.
pub fn generate(options: &GenerateOptions, out: &Path) -> Result<GenerateSummary, Error> {
    let end = options
        .start
        .checked_add_months(chrono::Months::new(12 * options.years))
        .ok_or_else(|| Error::config("generate", "years: too far in the future"))?;
    let mut generator = Generator {
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        cases: ChaCha8Rng::seed_from_u64(options.seed ^ 0x6361_7365_7321),
        options: options.clone(),
        end,
        next_id: BTreeMap::new(),
        used_ninos: Default::default(),
    };
    let mut writer = Writer::new(out)?;
    writer.row(QUALITY_TRUTH, &["rule", "source", "source_id"])?;
    let properties = generator.properties();
    let households = generator.households(&properties);
    generator.write_properties(&properties, &mut writer)?;
    generator.write_people(&properties, &households, &mut writer)?;
    generator.write_repairs(&properties, &households, &mut writer)?;
    let mut summary = writer.finish()?;
    summary.true_properties = properties.len();
    summary.true_persons = households
        .iter()
        .map(|household| household.members.len())
        .sum::<usize>()
        + summary
            .files
            .get("truth/crm_only.csv")
            .copied()
            .unwrap_or(0);
    Ok(summary)
}

/// A valid National Insurance number none of `used` holds (then added to it): allowed prefix
/// letters, six digits, suffix A-D.
fn new_nino(rng: &mut ChaCha8Rng, used: &mut std::collections::BTreeSet<String>) -> String {
    const FIRST: &[u8] = b"ABCEGHJKLMNOPRSTWXYZ";
    const SECOND: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
    loop {
        let prefix = format!(
            "{}{}",
            FIRST[rng.random_range(0..FIRST.len())] as char,
            SECOND[rng.random_range(0..SECOND.len())] as char
        );
        if ["BG", "GB", "NK", "KN", "TN", "NT", "ZZ"].contains(&prefix.as_str()) {
            continue;
        }
        let nino = format!(
            "{prefix}{:06}{}",
            rng.random_range(0..1_000_000),
            ['A', 'B', 'C', 'D'][rng.random_range(0..4)]
        );
        if used.insert(nino.clone()) {
            return nino;
        }
    }
}

/// The defects the default recording standard should find (`mdm::quality::default_rules`),
/// one row per rule and record: what `goldthread quality-report` is held to.
const QUALITY_TRUTH: &str = "truth/quality.csv";

/// The rules of the default standard each injected defect fails.
fn defects(flags: &[&str]) -> impl Iterator<Item = &'static str> {
    flags.iter().filter_map(|flag| match *flag {
        "missing_dob" => Some("person-date-of-birth"),
        "default_dob" => Some("person-date-of-birth-valid"),
        "missing_nino" => Some("tenant-nino"),
        "placeholder_nino" => Some("person-nino-valid"),
        "hms_duplicate" => Some("person-single-hms-record"),
        "missing_uprn" => Some("property-uprn"),
        "no_asset_record" => Some("property-asset-record"),
        "dob_disagrees" => Some("person-date-of-birth-agrees"),
        _ => None,
    })
}

/// Writes the rows of `truth/quality.csv` for one record's injected defects.
fn write_defects(writer: &mut Writer, source: &str, id: &str, flags: &[&str]) -> Result<(), Error> {
    for rule in defects(flags) {
        writer.row(QUALITY_TRUTH, &[rule, source, id])?;
    }
    Ok(())
}

struct Household {
    home: usize,
    members: Vec<Person>,
    /// Indices into `members` of the tenancy's parties.
    tenants: usize,
    start: NaiveDate,
    /// The last day of the tenancy, when it ends before the extract.
    end: Option<NaiveDate>,
}

impl Generator {
    fn id(&mut self, prefix: &'static str, width: usize) -> String {
        let counter = self.next_id.entry(prefix).or_insert(0);
        *counter += 1;
        format!("{prefix}{:0width$}", *counter)
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    fn case(&mut self, probability: f64) -> bool {
        self.cases.random_bool(probability.clamp(0.0, 1.0))
    }
}

/// Whether a tenancy (first day, last day) was in force on a day.
fn occupied_on(tenancy: Option<(NaiveDate, Option<NaiveDate>)>, day: NaiveDate) -> bool {
    tenancy.is_some_and(|(start, end)| start <= day && end.is_none_or(|end| day <= end))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One typing error: a dropped, doubled or swapped letter.
fn typo(rng: &mut ChaCha8Rng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 3 {
        return word.to_string();
    }
    let at = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..3) {
        0 => {
            chars.remove(at);
        }
        1 => chars.insert(at, chars[at]),
        _ => chars.swap(at, at + 1),
    }
    chars.into_iter().collect()
}

/// A Poisson draw (Knuth's method; fine for the small means used here).
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> usize {
    let limit = (-mean).exp();
    let mut product: f64 = rng.random();
    let mut count = 0;
    while product > limit {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

/// Writes each output file once, in order, and counts data rows per file.
struct Writer {
    root: PathBuf,
    files: BTreeMap<String, (BufWriter<File>, usize)>,
}

impl Writer {
    fn new(root: &Path) -> Result<Writer, Error> {
        std::fs::create_dir_all(root).map_err(|error| Error::io(root, error))?;
        Ok(Writer {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
        })
    }

    fn file(&mut self, name: &str) -> Result<&mut (BufWriter<File>, usize), Error> {
        if !self.files.contains_key(name) {
            let path = self.root.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
            }
            let file = File::create(&path).map_err(|error| Error::io(&path, error))?;
            self.files
                .insert(name.to_string(), (BufWriter::new(file), 0));
        }
        Ok(self.files.get_mut(name).expect("inserted above"))
    }

    /// Writes one CSV row; the first row written to a file is its header.
    fn row(&mut self, name: &str, fields: &[&str]) -> Result<(), Error> {
        let path = self.root.join(name);
        let (file, rows) = self.file(name)?;
        let mut line = Vec::new();
        {
            let mut csv = csv::WriterBuilder::new().from_writer(&mut line);
            csv.write_record(fields).map_err(|source| Error::Csv {
                path: path.clone(),
                source,
            })?;
            csv.flush().map_err(|error| Error::io(&path, error))?;
        }
        file.write_all(&line)
            .map_err(|error| Error::io(&path, error))?;
        *rows += 1;
        Ok(())
    }

    fn json_line(&mut self, name: &str, value: &serde_json::Value) -> Result<(), Error> {
        let path = self.root.join(name);
        let (file, rows) = self.file(name)?;
        serde_json::to_writer(&mut *file, value).map_err(|error| Error::io(&path, error.into()))?;
        file.write_all(b"\n")
            .map_err(|error| Error::io(&path, error))?;
        *rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<GenerateSummary, Error> {
        let mut summary = GenerateSummary::default();
        for (name, (mut file, rows)) in self.files {
            file.flush()
                .map_err(|error| Error::io(self.root.join(&name), error))?;
            // CSV files: the header is not a data row.
            let data_rows = if name.ends_with(".csv") {
                rows.saturating_sub(1)
            } else {
                rows
            };
            summary.files.insert(name, data_rows);
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_dir(root: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for entry in walk(root) {
            let name = entry.strip_prefix(root).unwrap().display().to_string();
            files.insert(name, std::fs::read(&entry).unwrap());
        }
        files
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                paths.extend(walk(&path));
            } else {
                paths.push(path);
            }
        }
        paths
    }

    #[test]
    fn same_arguments_give_the_same_bytes_and_another_seed_does_not() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        generate(&GenerateOptions::new(150, 1, 7), a.path()).unwrap();
        generate(&GenerateOptions::new(150, 1, 7), b.path()).unwrap();
        generate(&GenerateOptions::new(150, 1, 8), c.path()).unwrap();
        let (files_a, files_b, files_c) =
            (read_dir(a.path()), read_dir(b.path()), read_dir(c.path()));
        assert_eq!(
            files_a.keys().collect::<Vec<_>>(),
            files_b.keys().collect::<Vec<_>>()
        );
        assert!(files_a == files_b, "same arguments, different bytes");
        assert!(files_a != files_c, "another seed, same bytes");
    }

    #[test]
    fn volumes_follow_the_domain_brief() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(&GenerateOptions::new(1000, 1, 3), dir.path()).unwrap();
        let homes = summary.files["hms/properties.csv"];
        assert!(homes >= 1000, "{homes}");
        let work_orders = summary.files["truth/work_orders.csv"] as f64;
        let appointments = summary.files["truth/appointments.csv"] as f64;
        // 3-4 responsive repairs per occupied home a year, ~1.3 appointments per repair.
        assert!((3000.0..=3700.0).contains(&work_orders), "{work_orders}");
        let per_repair = appointments / work_orders;
        assert!((1.1..=1.5).contains(&per_repair), "{per_repair}");
        // Ground truth covers every person and property source record.
        assert_eq!(
            summary.files["truth/persons.csv"],
            summary.files["hms/tenants.csv"] + summary.files["crm/contacts.csv"]
        );
        assert_eq!(
            summary.files["truth/properties.csv"],
            summary.files["hms/properties.csv"] + summary.files["asset/assets.csv"]
        );
    }

    #[test]
    fn typo_changes_one_letter() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let typed = typo(&mut rng, "Robinson");
            assert_ne!(typed, "Robinson");
            assert!(typed.len().abs_diff("Robinson".len()) <= 1, "{typed}");
        }
    }
}
