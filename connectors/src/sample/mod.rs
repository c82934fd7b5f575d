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

pub mod legacy;
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

    fn properties(&mut self) -> Vec<Property> {
        let mut properties = Vec::new();
        let mut homes = 0;
        let mut uprn: u64 = 100_023_000_000 + self.rng.random_range(0..1_000_000);
        let mut street_index = 0;
        while homes < self.options.homes {
            let (town, districts) = TOWNS[street_index % TOWNS.len()];
            let street = (
                STREET_NAMES[street_index % STREET_NAMES.len()].to_string(),
                (street_index / STREET_NAMES.len() + street_index) % STREET_TYPES.len(),
            );
            // A town cycles through its districts; the street name list repeats in other towns.
            let district = districts[(street_index / TOWNS.len()) % districts.len()];
            let sector = self.rng.random_range(1..10);
            let mut postcode = self.postcode(district, sector);
            let mut number = 1;
            for building in 0..self.rng.random_range(8..30) {
                if homes >= self.options.homes {
                    break;
                }
                if building % 10 == 9 {
                    postcode = self.postcode(district, sector);
                }
                let mut push = |generator: &mut Self,
                                saon: Option<String>,
                                paon: String,
                                kind: &'static str,
                                parent: Option<String>,
                                is_home: bool| {
                    uprn += generator.rng.random_range(1..40);
                    let id = generator.id("PR", 6);
                    let hms_ref = generator.id("P", 6);
                    properties.push(Property {
                        id,
                        hms_ref,
                        uprn: uprn.to_string(),
                        parent_uprn: parent,
                        saon,
                        paon,
                        street: street.clone(),
                        town,
                        postcode: postcode.clone(),
                        property_type: kind,
                        is_home,
                    });
                    uprn.to_string()
                };
                let roll: f64 = self.rng.random();
                if roll < 0.62 {
                    push(self, None, number.to_string(), "house", None, true);
                    homes += 1;
                    if self.chance(0.06) {
                        // Separate houses built on a plot: 14A, 14B are buildings, not flats.
                        for letter in ["A", "B"] {
                            push(self, None, format!("{number}{letter}"), "house", None, true);
                            homes += 1;
                        }
                    }
                } else if roll < 0.74 {
                    // A converted house: flats A-C inside building `number`.
                    let parent = push(self, None, number.to_string(), "block", None, false);
                    for letter in ["A", "B", "C"] {
                        push(
                            self,
                            Some(letter.to_string()),
                            number.to_string(),
                            "flat",
                            Some(parent.clone()),
                            true,
                        );
                        homes += 1;
                    }
                } else {
                    let parent = push(self, None, number.to_string(), "block", None, false);
                    for flat in 1..=self.rng.random_range(6..=16) {
                        push(
                            self,
                            Some(flat.to_string()),
                            number.to_string(),
                            "flat",
                            Some(parent.clone()),
                            true,
                        );
                        homes += 1;
                    }
                }
                number += if self.chance(0.5) { 1 } else { 2 };
            }
            street_index += 1;
        }
        properties
    }

    fn postcode(&mut self, district: &str, sector: u32) -> String {
        const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
        let a = UNIT[self.rng.random_range(0..UNIT.len())] as char;
        let b = UNIT[self.rng.random_range(0..UNIT.len())] as char;
        format!("{district} {sector}{a}{b}")
    }

    fn nino(&mut self) -> String {
        new_nino(&mut self.rng, &mut self.used_ninos)
    }

    fn person(&mut self, family: &str, female: bool, dob: NaiveDate) -> Person {
        let names = if female { FEMALE } else { MALE };
        let given = self.rng.random_range(0..names.len());
        let middle = self
            .chance(0.3)
            .then(|| self.rng.random_range(0..names.len()));
        let id = self.id("PE", 6);
        let nino = self.nino();
        let phone = format!("07{:09}", self.rng.random_range(0..1_000_000_000u64));
        Person {
            id,
            female,
            given,
            middle,
            family: family.to_string(),
            dob,
            nino,
            phone,
            email: None,
        }
    }

    fn adult_dob(&mut self) -> NaiveDate {
        let start = NaiveDate::from_ymd_opt(1940, 1, 1).expect("valid date");
        start + Duration::days(self.rng.random_range(0..(64 * 365)))
    }

    fn email(&mut self, person: &Person) -> Option<String> {
        self.chance(0.6).then(|| {
            let family: String = person
                .family
                .chars()
                .filter(char::is_ascii_alphabetic)
                .collect();
            format!(
                "{}.{}{}@example.com",
                person.given_name().to_lowercase(),
                family.to_lowercase(),
                self.rng.random_range(1..99)
            )
        })
    }

    fn households(&mut self, properties: &[Property]) -> Vec<Household> {
        let mut households = Vec::new();
        for (home, property) in properties.iter().enumerate() {
            if !property.is_home || self.chance(self.options.noise.void_homes) {
                continue;
            }
            let family = FAMILY_NAMES
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("Smith");
            let roll: f64 = self.rng.random();
            let mut members = Vec::new();
            let female = self.chance(0.55);
            let dob = self.adult_dob();
            let mut first = self.person(family, female, dob);
            first.email = self.email(&first);
            let tenants;
            if roll < self.options.noise.twins {
                // Adult twins: same surname, date of birth, address and phone; never one person.
                let twin_female = self.chance(0.5);
                let mut twin = self.person(family, twin_female, dob);
                while twin.female == first.female && twin.given == first.given {
                    twin.given = self.rng.random_range(0..twin.names().len());
                }
                twin.phone = first.phone.clone();
                twin.email = self.email(&twin);
                members.extend([first, twin]);
                tenants = 2;
            } else if roll < 0.45 {
                members.push(first);
                tenants = 1;
            } else if roll < 0.80 {
                // A couple on a joint tenancy, sharing a landline-style phone and often a surname.
                let partner_family = if self.chance(0.8) {
                    family
                } else {
                    FAMILY_NAMES
                        .choose(&mut self.rng)
                        .copied()
                        .unwrap_or("Jones")
                };
                let partner_dob = self.adult_dob();
                let mut partner = self.person(partner_family, !female, partner_dob);
                if self.chance(0.5) {
                    partner.phone = first.phone.clone();
                }
                partner.email = if self.chance(0.3) {
                    first.email.clone()
                } else {
                    self.email(&partner)
                };
                members.extend([first, partner]);
                tenants = 2;
            } else {
                // A tenant with an adult child in the household (not a party to the tenancy).
                // An adult child: born 20-40 years after the parent, and by 2006.
                let latest = NaiveDate::from_ymd_opt(2006, 1, 1).expect("valid date");
                let mut child_dob = dob + Duration::days(self.rng.random_range(20 * 365..40 * 365));
                if child_dob > latest {
                    child_dob = latest
                        - Duration::days(
                            self.rng
                                .random_range(0..(latest - dob).num_days().clamp(1, 20 * 365)),
                        );
                }
                let child_female = self.chance(0.5);
                let mut child = self.person(family, child_female, child_dob);
                child.phone = first.phone.clone();
                members.extend([first, child]);
                tenants = 1;
            }
            let start = self.options.start - Duration::days(self.rng.random_range(30..(20 * 365)));
            let days = (self.end - self.options.start).num_days().max(1);
            let end = self
                .case(self.options.noise.tenancy_ends)
                .then(|| self.options.start + Duration::days(self.cases.random_range(0..days)));
            households.push(Household {
                home,
                members,
                tenants,
                start,
                end,
            });
        }
        households
    }

    fn write_properties(
        &mut self,
        properties: &[Property],
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let hms = "hms/properties.csv";
        writer.row(
            hms,
            &[
                "prop_ref",
                "uprn",
                "parent_uprn",
                "flat",
                "building",
                "street",
                "town",
                "postcode",
                "property_type",
            ],
        )?;
        let asset = "asset/assets.csv";
        writer.row(
            asset,
            &[
                "asset_id",
                "uprn",
                "address",
                "postcode",
                "asset_type",
                "construction_year",
            ],
        )?;
        let truth = "truth/properties.csv";
        writer.row(truth, &["source", "source_id", "property_id", "noise"])?;
        for property in properties {
            writer.row(
                hms,
                &[
                    &property.hms_ref,
                    &property.uprn,
                    property.parent_uprn.as_deref().unwrap_or(""),
                    property.saon.as_deref().unwrap_or(""),
                    &property.paon,
                    &property.street_full(),
                    property.town,
                    &property.postcode,
                    property.property_type,
                ],
            )?;
            writer.row(truth, &["hms", &property.hms_ref, &property.id, ""])?;
            if !self.chance(0.9) {
                write_defects(writer, "hms", &property.hms_ref, &["no_asset_record"])?;
                continue;
            }
            let asset_id = self.id("AS", 6);
            let mut noise = Vec::new();
            let street = if self.chance(0.5) {
                noise.push("street_abbreviation");
                property.street_short()
            } else {
                property.street_full()
            };
            let letter_flat = property
                .saon
                .as_deref()
                .is_some_and(|saon| saon.chars().all(|c| c.is_ascii_alphabetic()));
            let address = match property.saon.as_deref() {
                None => format!("{} {street}", property.paon),
                Some(saon) if letter_flat && self.chance(0.3) => {
                    // `14b High Street` for flat B of 14: the hard case; UPRN kept below.
                    noise.push("flat_letter_as_suffix");
                    format!("{}{} {street}", property.paon, saon.to_lowercase())
                }
                Some(saon) => match self.rng.random_range(0..4) {
                    0 => format!("Flat {saon}, {} {street}", property.paon),
                    1 => {
                        noise.push("address_variant");
                        format!("{saon}/{} {street}", property.paon)
                    }
                    2 => {
                        noise.push("address_variant");
                        format!("Apartment {saon}, {} {street}", property.paon)
                    }
                    _ => {
                        noise.push("address_variant");
                        format!("{} {street} Flat {saon}", property.paon)
                    }
                },
            };
            let postcode = if self.chance(0.1) {
                noise.push("postcode_format");
                property.postcode.replace(' ', "").to_lowercase()
            } else {
                property.postcode.clone()
            };
            let uprn = if !noise.contains(&"flat_letter_as_suffix")
                && self.chance(self.options.noise.missing_uprn)
            {
                noise.push("missing_uprn");
                ""
            } else {
                property.uprn.as_str()
            };
            let year = self.rng.random_range(1900..2015).to_string();
            writer.row(
                asset,
                &[
                    &asset_id,
                    uprn,
                    &address,
                    &postcode,
                    property.property_type,
                    &year,
                ],
            )?;
            writer.row(truth, &["asset", &asset_id, &property.id, &noise.join(";")])?;
            write_defects(writer, "asset", &asset_id, &noise)?;
        }
        Ok(())
    }

    fn write_people(
        &mut self,
        properties: &[Property],
        households: &[Household],
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let tenants_file = "hms/tenants.csv";
        writer.row(
            tenants_file,
            &[
                "person_ref",
                "title",
                "forename",
                "middle_name",
                "surname",
                "dob",
                "ni_number",
                "phone",
                "email",
            ],
        )?;
        let tenancies_file = "hms/tenancies.csv";
        writer.row(
            tenancies_file,
            &[
                "tenancy_ref",
                "prop_ref",
                "tenant_refs",
                "start_date",
                "end_date",
                "tenure",
            ],
        )?;
        let crm_file = "crm/contacts.csv";
        writer.row(
            crm_file,
            &[
                "contact_id",
                "full_name",
                "date_of_birth",
                "mobile",
                "email",
                "postcode",
                "address_line",
            ],
        )?;
        let vulnerabilities_file = "hms/vulnerabilities.csv";
        writer.row(
            vulnerabilities_file,
            &[
                "alert_id",
                "person_ref",
                "code",
                "description",
                "start_date",
                "end_date",
                "review_date",
            ],
        )?;
        let truth = "truth/persons.csv";
        writer.row(truth, &["source", "source_id", "person_id", "noise"])?;
        writer.row("truth/crm_only.csv", &["person_id"])?;
        let noise = self.options.noise.clone();
        for household in households {
            let property = &properties[household.home];
            let mut tenant_refs = Vec::new();
            for (index, person) in household.members.iter().enumerate() {
                let copies = if self.chance(noise.hms_duplicate) {
                    2
                } else {
                    1
                };
                // Whether an HMS record holds the real date of birth (not a default): a CRM
                // date that differs from it is then a disagreement between the systems.
                let mut hms_dob = false;
                for copy in 0..copies {
                    let person_ref = self.id("T", 6);
                    let mut flags = Vec::new();
                    if copy == 1 {
                        flags.push("hms_duplicate");
                    }
                    let title = person.title(&mut self.rng);
                    let (title_field, forename) = if self.chance(noise.title_in_name) {
                        flags.push("title_in_name");
                        (String::new(), format!("{title} {}", person.given_name()))
                    } else {
                        (title.to_string(), person.given_name().to_string())
                    };
                    let dob = if self.chance(noise.default_dob / 2.0) {
                        flags.push("default_dob");
                        "01/01/1900".to_string()
                    } else {
                        hms_dob = true;
                        person.dob.format("%d/%m/%Y").to_string()
                    };
                    let nino = if self.chance(noise.placeholder_nino) {
                        flags.push("placeholder_nino");
                        PLACEHOLDER_NINOS
                            .choose(&mut self.rng)
                            .copied()
                            .unwrap_or("QQ123456C")
                            .to_string()
                    } else if self.chance(noise.missing_nino) {
                        flags.push("missing_nino");
                        String::new()
                    } else {
                        person.nino.clone()
                    };
                    let middle = person
                        .middle
                        .map(|middle| person.names()[middle].0)
                        .unwrap_or("");
                    writer.row(
                        tenants_file,
                        &[
                            &person_ref,
                            &title_field,
                            &forename,
                            middle,
                            &person.family,
                            &dob,
                            &nino,
                            &person.phone,
                            person.email.as_deref().unwrap_or(""),
                        ],
                    )?;
                    writer.row(truth, &["hms", &person_ref, &person.id, &flags.join(";")])?;
                    write_defects(writer, "hms", &person_ref, &flags)?;
                    if copy == 0 {
                        if index < household.tenants {
                            tenant_refs.push(person_ref.clone());
                        }
                        if self.chance(0.08) {
                            self.vulnerability(&person_ref, writer)?;
                        }
                    }
                }
                if self.chance(noise.crm_coverage) {
                    self.crm_contact(person, property, hms_dob, writer)?;
                }
            }
            let tenancy_ref = self.id("TY", 6);
            writer.row(
                tenancies_file,
                &[
                    &tenancy_ref,
                    &property.hms_ref,
                    &tenant_refs.join(";"),
                    &household.start.format("%d/%m/%Y").to_string(),
                    &household
                        .end
                        .map(|end| end.format("%d/%m/%Y").to_string())
                        .unwrap_or_default(),
                    if household.tenants == 2 {
                        "joint secure"
                    } else {
                        "secure"
                    },
                ],
            )?;
            if self.chance(noise.crm_only * noise.crm_coverage) {
                // An applicant in the CRM who is not a tenant: a person of their own.
                let female = self.chance(0.5);
                let dob = self.adult_dob();
                let family = FAMILY_NAMES
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("Smith");
                let applicant = self.person(family, female, dob);
                writer.row("truth/crm_only.csv", &[&applicant.id])?;
                self.crm_contact(&applicant, property, false, writer)?;
            }
        }
        Ok(())
    }

    fn vulnerability(&mut self, person_ref: &str, writer: &mut Writer) -> Result<(), Error> {
        let alert_id = self.id("VA", 6);
        let (code, description) = *VULNERABILITY_CODES
            .choose(&mut self.rng)
            .expect("non-empty");
        let start = self.options.start - Duration::days(self.rng.random_range(0..3 * 365));
        let temporary = self.chance(0.3);
        let end = temporary.then(|| start + Duration::days(self.rng.random_range(90..720)));
        let review = start + Duration::days(365);
        let date = |date: NaiveDate| date.format("%d/%m/%Y").to_string();
        writer.row(
            "hms/vulnerabilities.csv",
            &[
                &alert_id,
                person_ref,
                code,
                description,
                &date(start),
                &end.map(date).unwrap_or_default(),
                &date(review),
            ],
        )
    }

    /// A CRM contact of `person`; `hms_dob`: whether an HMS record of theirs holds their
    /// real date of birth.
    fn crm_contact(
        &mut self,
        person: &Person,
        property: &Property,
        hms_dob: bool,
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let noise = self.options.noise.clone();
        let contact_id = self.id("C", 7);
        let mut flags = Vec::new();
        let mut given = person.given_name().to_string();
        let nicknames = person.names()[person.given].1;
        if !nicknames.is_empty() && self.chance(noise.nickname) {
            flags.push("nickname");
            given = nicknames[0].to_string();
        }
        let mut family = person.family.clone();
        if self.chance(noise.typo) {
            flags.push("typo");
            family = typo(&mut self.rng, &family);
        }
        let full_name = if self.chance(noise.name_swap) {
            flags.push("name_swap");
            format!("{}, {given}", family.to_uppercase())
        } else if self.chance(0.4) {
            format!("{} {given} {family}", person.title(&mut self.rng))
        } else {
            format!("{given} {family}")
        };
        let dob = if self.chance(noise.missing_dob) {
            flags.push("missing_dob");
            String::new()
        } else if self.chance(noise.default_dob) {
            flags.push("default_dob");
            "1900-01-01".to_string()
        } else if person.dob.day() <= 12
            && person.dob.day() != person.dob.month()
            && self.chance(noise.dob_swap)
        {
            flags.push("dob_swap");
            format!(
                "{}-{:02}-{:02}",
                person.dob.year(),
                person.dob.day(),
                person.dob.month()
            )
        } else {
            person.dob.format("%Y-%m-%d").to_string()
        };
        let phone = if self.chance(0.5) {
            format!("+44 {} {}", &person.phone[1..5], &person.phone[5..])
        } else {
            format!("{} {}", &person.phone[..5], &person.phone[5..])
        };
        let address = match &property.saon {
            Some(saon) => format!("Flat {saon}, {} {}", property.paon, property.street_full()),
            None => format!("{} {}", property.paon, property.street_full()),
        };
        writer.row(
            "crm/contacts.csv",
            &[
                &contact_id,
                &full_name,
                &dob,
                &phone,
                person.email.as_deref().unwrap_or(""),
                &property.postcode,
                &address,
            ],
        )?;
        writer.row(
            "truth/persons.csv",
            &["crm", &contact_id, &person.id, &flags.join(";")],
        )?;
        if hms_dob && flags.contains(&"dob_swap") {
            flags.push("dob_disagrees");
        }
        write_defects(writer, "crm", &contact_id, &flags)
    }

    fn instant(&mut self, date: NaiveDate, from_hour: u32, to_hour: u32) -> DateTime<Utc> {
        let seconds = self.rng.random_range(from_hour * 3600..to_hour * 3600);
        date.and_time(NaiveTime::MIN).and_utc() + Duration::seconds(i64::from(seconds))
    }

    fn next_weekday(date: NaiveDate) -> NaiveDate {
        let mut date = date;
        while matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            date += Duration::days(1);
        }
        date
    }

    fn write_repairs(
        &mut self,
        properties: &[Property],
        households: &[Household],
        writer: &mut Writer,
    ) -> Result<(), Error> {
        writer.row(
            "truth/work_orders.csv",
            &[
                "work_order_ref",
                "repair_request_ref",
                "property_id",
                "priority",
                "work_class",
                "reported_at",
                "raised_at",
                "completed_at",
                "cancelled_at",
                "contractor",
                "trade",
                "occupied",
                "current_priority",
                "priority_changed_at",
                "parent_ref",
            ],
        )?;
        writer.row(
            "truth/appointments.csv",
            &[
                "appointment_ref",
                "work_order_ref",
                "slot_date",
                "slot",
                "booked_at",
                "reminder_sent",
                "outcome",
                "attribution",
                "verified",
                "arrived_at",
            ],
        )?;
        let days = (self.end - self.options.start).num_days();
        let mut messages = Vec::new();
        let noise = self.options.noise.clone();
        let tenancy: BTreeMap<usize, &Household> = households
            .iter()
            .map(|household| (household.home, household))
            .collect();
        for (home, property) in properties.iter().enumerate() {
            if !property.is_home {
                continue;
            }
            let expected = 3.5 * f64::from(self.options.years);
            for _ in 0..poisson(&mut self.rng, expected) {
                let date = self.options.start + Duration::days(self.rng.random_range(0..days));
                // A home nobody lives in on the report day gets void works, not responsive
                // repairs.
                let let_ = tenancy
                    .get(&home)
                    .map(|household| (household.start, household.end));
                let occupied = occupied_on(let_, date);
                // ... except the few a repairs desk records as responsive all the same.
                let work_class = if occupied || self.case(noise.responsive_on_void) {
                    "responsive"
                } else {
                    "void"
                };
                self.repair(
                    property,
                    Origin::Report(date),
                    work_class,
                    let_,
                    &mut messages,
                    writer,
                )?;
            }
        }
        messages.sort_by_key(|message| (message.at, message.sequence));
        for message in messages {
            writer.json_line("repairs/messages.jsonl", &message.body)?;
        }
        Ok(())
    }

    fn message(
        &mut self,
        messages: &mut Vec<Message>,
        at: DateTime<Utc>,
        mut body: serde_json::Value,
    ) {
        if at.date_naive() >= self.end {
            return; // after the extract: the feed has not seen it yet
        }
        body["messageId"] = json!(self.id("M", 8));
        // When the repairs system recorded the message (a second version of a work order
        // says when its priority changed).
        body["recordedAt"] = json!(rfc3339(at));
        let noise = &self.options.noise;
        let (late, duplicate) = (noise.late_message, noise.duplicate_message);
        // A report or a booking that reaches the feed late (after what follows from it), but
        // before the extract. Records with one version only, so that arriving late changes
        // nothing once everything has arrived.
        let mut delivered = at;
        if matches!(
            body["messageType"].as_str(),
            Some("RaiseRepair" | "RefinedAppointmentWindow")
        ) && self.case(late)
        {
            let end = self.end.and_time(NaiveTime::MIN).and_utc() - Duration::seconds(1);
            delivered = (at + Duration::minutes(self.cases.random_range(60..72 * 60))).min(end);
        }
        if self.case(duplicate) {
            messages.push(Message {
                at: delivered,
                sequence: messages.len(),
                body: body.clone(),
            });
        }
        messages.push(Message {
            at: delivered,
            sequence: messages.len(),
            body,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn repair(
        &mut self,
        property: &Property,
        origin: Origin,
        work_class: &str,
        tenancy: Option<(NaiveDate, Option<NaiveDate>)>,
        messages: &mut Vec<Message>,
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let noise = self.options.noise.clone();
        let property_reference = json!({"id": property.hms_ref, "allocatedBy": "hms"});
        let order_ref = match &origin {
            Origin::FollowOn { reference, .. } => reference.clone(),
            Origin::Report(_) => self.id("WO", 7),
        };
        // (request, reported at, priority, raised at, contractor, trade, parent)
        let (
            request_ref,
            reported_at,
            (priority, priority_name),
            raised_at,
            contractor,
            trade,
            parent,
        ) = match origin {
            Origin::Report(date) => {
                let request_ref = self.id("RR", 7);
                let reported_at = self.instant(date, 7, 19);
                let roll: f64 = self.rng.random();
                let mut cumulative = 0.0;
                let &(priority, priority_name, _) = PRIORITIES
                    .iter()
                    .find(|(_, _, share)| {
                        cumulative += share;
                        roll < cumulative
                    })
                    .unwrap_or(&PRIORITIES[3]);
                let raise_delay = if priority <= 2 {
                    self.rng.random_range(5..240)
                } else {
                    self.rng.random_range(10..2880)
                };
                let raised_at = reported_at + Duration::minutes(raise_delay);
                let contractor = *CONTRACTORS.choose(&mut self.rng).expect("non-empty");
                let mut trade = *TRADES.choose(&mut self.rng).expect("non-empty");
                if self.case(noise.damp_and_mould) {
                    trade = "damp and mould";
                }
                let channel =
                    ["phone", "online", "email", "in person"][self.rng.random_range(0..4)];
                // Now and then raised without a report: the clock starts when it is raised.
                let request = (!self.case(noise.no_request)).then(|| {
                    self.message(
                        messages,
                        reported_at,
                        json!({
                            "messageType": "RaiseRepair",
                            "repairRequestRef": request_ref,
                            "propertyReference": property_reference,
                            "dateReported": rfc3339(reported_at),
                            "priority": {"code": priority, "description": priority_name},
                            "description": format!("{trade} repair"),
                            "channel": channel,
                        }),
                    );
                    request_ref
                });
                let clock = if request.is_some() {
                    reported_at
                } else {
                    raised_at
                };
                (
                    request,
                    clock,
                    (priority, priority_name),
                    raised_at,
                    contractor,
                    trade,
                    None,
                )
            }
            Origin::FollowOn {
                reference: _,
                parent,
                raised_at,
                trade,
                contractor,
            } => {
                let &(priority, priority_name, _) =
                    &PRIORITIES[if self.cases.random_bool(0.4) { 2 } else { 3 }];
                (
                    None,
                    raised_at,
                    (priority, priority_name),
                    raised_at,
                    contractor,
                    trade,
                    Some(parent),
                )
            }
        };
        let emergency = priority <= 2;
        let occupied = occupied_on(tenancy, reported_at.date_naive());
        let request_json = request_ref
            .as_ref()
            .map_or(serde_json::Value::Null, |r| json!(r));
        let parent_json = parent
            .as_ref()
            .map_or(serde_json::Value::Null, |p| json!(p));
        // The order at a priority (every version but the priority is the same).
        let schedule = |code: i64, name: &str| {
            json!({
                "messageType": "ScheduleRepair",
                "workOrderRef": order_ref,
                "repairRequestRef": request_json,
                "parentWorkOrderRef": parent_json,
                "propertyReference": property_reference,
                "dateRaised": rfc3339(raised_at),
                "priority": {"code": code, "description": name},
                "contractor": {"name": contractor},
                "trade": trade,
                "workClass": work_class,
            })
        };
        self.message(messages, raised_at, schedule(priority, priority_name));
        // A second version of the order with another priority, raised or lowered, from an
        // hour to six weeks after it was raised (before or after the reported priority's
        // target).
        let mut current_priority = priority;
        let mut priority_changed_at = None;
        if self.case(noise.priority_change) {
            let others: Vec<_> = PRIORITIES
                .iter()
                .filter(|(code, _, _)| *code != priority && *code <= 4)
                .collect();
            let &&(code, name, _) = others
                .get(self.cases.random_range(0..others.len()))
                .expect("other priorities");
            let at = raised_at + Duration::minutes(self.cases.random_range(60..60 * 24 * 42));
            current_priority = code;
            priority_changed_at = Some(at);
            self.message(messages, at, schedule(code, name));
        }
        let mut completed_at = None;
        let mut cancelled_at = None;
        let mut follow_on = None;
        if self.chance(noise.cancelled_work_order) {
            let at = raised_at + Duration::hours(self.rng.random_range(2..96));
            self.message(
                messages,
                at,
                json!({
                    "messageType": "CancelRepair",
                    "workOrderRef": order_ref,
                    "dateCancelled": rfc3339(at),
                    "status": "cancelled",
                }),
            );
            cancelled_at = Some(at);
        } else {
            let mut slot_date = Self::next_weekday(if emergency {
                raised_at.date_naive()
            } else {
                raised_at.date_naive()
                    + Duration::days(match priority {
                        3 => self.rng.random_range(1..5),
                        _ => self.rng.random_range(3..24),
                    })
            });
            let mut booked_at = raised_at + Duration::minutes(self.rng.random_range(1..90));
            let mut emergency_start = raised_at;
            for attempt in 0..5 {
                let appointment_ref = self.id("AP", 7);
                // Emergencies are attended within hours, at any time of day; other work gets a
                // weekday slot.
                let (slot, window_start, window_end, arrival) = if emergency {
                    let start = emergency_start;
                    let minutes = if self.chance(0.92) {
                        self.rng.random_range(30..600)
                    } else {
                        self.rng.random_range(600..2000)
                    };
                    (
                        "emergency",
                        start,
                        start + Duration::hours(24),
                        start + Duration::minutes(minutes),
                    )
                } else {
                    let &(slot, from, to) = SLOTS.choose(&mut self.rng).expect("non-empty");
                    let midnight = slot_date.and_time(NaiveTime::MIN).and_utc();
                    let arrival = self.instant(slot_date, from, to);
                    (
                        slot,
                        midnight + Duration::hours(i64::from(from)),
                        midnight + Duration::hours(i64::from(to)),
                        arrival,
                    )
                };
                let day = window_start.date_naive();
                let booked = if emergency {
                    window_start
                } else {
                    booked_at.min(window_start - Duration::minutes(30))
                };
                let reminder = !emergency && self.chance(noise.reminder);
                self.message(
                    messages,
                    booked,
                    json!({
                        "messageType": "RefinedAppointmentWindow",
                        "appointmentRef": appointment_ref,
                        "workOrderRef": order_ref,
                        "appointmentDate": day.to_string(),
                        "slot": slot,
                        "earliestArrivalTime": rfc3339(window_start),
                        "latestArrivalTime": rfc3339(window_end),
                        "bookedAt": rfc3339(booked),
                        "reminderSent": reminder,
                    }),
                );
                let no_access = if reminder {
                    noise.no_access_reminded
                } else {
                    noise.no_access_not_reminded
                };
                let roll: f64 = self.rng.random();
                let last = attempt == 4;
                let aborted = !last && self.case(noise.aborted_visit);
                let (outcome, attribution, at) = if last {
                    ("kept_completed", "", arrival)
                } else if aborted {
                    // Unsafe to work on arrival (no gas safe engineer, asbestos suspected).
                    let side = if contractor == "In-house DLO" {
                        "landlord"
                    } else {
                        "contractor"
                    };
                    ("aborted", side, arrival)
                } else if roll < noise.resident_cancelled {
                    let notice = Duration::hours(self.rng.random_range(2..48));
                    // An emergency is booked when raised: its cancellation comes after that.
                    let at = if emergency {
                        window_start + notice / 6
                    } else {
                        window_start - notice
                    };
                    ("cancelled", "resident", at)
                } else if roll < noise.resident_cancelled + noise.landlord_missed {
                    (
                        "missed",
                        if contractor == "In-house DLO" {
                            "landlord"
                        } else {
                            "contractor"
                        },
                        window_end,
                    )
                } else if roll < noise.resident_cancelled + noise.landlord_missed + no_access {
                    ("no_access", "resident", arrival)
                } else if !emergency
                    && roll
                        < noise.resident_cancelled
                            + noise.landlord_missed
                            + no_access
                            + noise.kept_not_completed
                {
                    // An emergency is complete once made safe: remaining work would be a follow-on.
                    ("kept_not_completed", "", arrival)
                } else {
                    ("kept_completed", "", arrival)
                };
                // Full evidence includes an arrival inside the window.
                let mut verified = outcome == "no_access"
                    && self.chance(noise.no_access_verified)
                    && arrival <= window_end;
                let partial = verified && self.case(noise.partial_evidence);
                verified &= !partial;
                let evidence = match outcome {
                    "no_access" if partial && self.cases.random_bool(0.5) => {
                        json!({"arrivalTime": rfc3339(arrival), "contactAttempts": 0, "cardLeft": true, "photo": false})
                    }
                    "no_access" if partial => {
                        json!({"arrivalTime": null, "contactAttempts": self.cases.random_range(1..4), "cardLeft": true, "photo": false})
                    }
                    "no_access" if verified => {
                        json!({"arrivalTime": rfc3339(arrival), "contactAttempts": self.rng.random_range(2..4), "cardLeft": true, "photo": self.chance(0.6)})
                    }
                    "no_access" => {
                        json!({"arrivalTime": null, "contactAttempts": 0, "cardLeft": false, "photo": false})
                    }
                    "kept_completed" | "kept_not_completed" | "aborted" => {
                        json!({"arrivalTime": rfc3339(arrival)})
                    }
                    _ => json!({}),
                };
                let type_code = match outcome {
                    "no_access" => 70,
                    "missed" => 75,
                    "cancelled" => 60,
                    "kept_not_completed" => 40,
                    "aborted" => 45,
                    _ => 80,
                };
                let visible = at.date_naive() < self.end;
                if visible && self.case(noise.corrected_outcome) {
                    // Recorded wrongly first, corrected by the message below.
                    let wrong = at - Duration::minutes(30);
                    self.message(messages, wrong, json!({
                        "messageType": "JobStatusUpdate",
                        "appointmentRef": appointment_ref,
                        "workOrderRef": order_ref,
                        "eventTime": rfc3339(wrong),
                        "typeCode": 70,
                        "outcome": "no_access",
                        "attribution": "resident",
                        "evidence": {"arrivalTime": null, "contactAttempts": 0, "cardLeft": false, "photo": false},
                    }));
                }
                self.message(messages, at, json!({
                    "messageType": "JobStatusUpdate",
                    "appointmentRef": appointment_ref,
                    "workOrderRef": order_ref,
                    "eventTime": rfc3339(at),
                    "typeCode": type_code,
                    "outcome": outcome,
                    "attribution": if attribution.is_empty() { serde_json::Value::Null } else { json!(attribution) },
                    "evidence": evidence,
                }));
                writer.row(
                    "truth/appointments.csv",
                    &[
                        &appointment_ref,
                        &order_ref,
                        &day.to_string(),
                        slot,
                        &rfc3339(booked),
                        if reminder { "true" } else { "false" },
                        if visible { outcome } else { "" },
                        if visible { attribution } else { "" },
                        if verified { "true" } else { "false" },
                        // When an operative arrived and worked (or found it unsafe).
                        &if visible
                            && matches!(
                                outcome,
                                "kept_completed" | "kept_not_completed" | "aborted"
                            )
                        {
                            rfc3339(arrival)
                        } else {
                            String::new()
                        },
                    ],
                )?;
                if outcome == "kept_completed" {
                    let done = at + Duration::minutes(self.rng.random_range(30..240));
                    // An emergency is complete once made safe; the rest of the work is a
                    // follow-on order.
                    let follow_on_ref =
                        (emergency && self.case(noise.follow_on)).then(|| self.id("WO", 7));
                    self.message(
                        messages,
                        done,
                        json!({
                            "messageType": "WorkOrderComplete",
                            "workOrderRef": order_ref,
                            "dateCompleted": rfc3339(done),
                            "status": "completed",
                            "followOnWorkOrderReference": follow_on_ref,
                        }),
                    );
                    completed_at = Some(done);
                    follow_on = follow_on_ref.map(|reference| (reference, done));
                    break;
                }
                booked_at = at + Duration::minutes(self.rng.random_range(5..240));
                emergency_start = at + Duration::hours(1);
                slot_date = Self::next_weekday(
                    at.date_naive()
                        + Duration::days(if emergency {
                            1
                        } else {
                            self.rng.random_range(2..10)
                        }),
                );
            }
        }
        if let Some((reference, made_safe)) = follow_on {
            let raised_at = made_safe + Duration::minutes(self.cases.random_range(10..600));
            self.repair(
                property,
                Origin::FollowOn {
                    reference,
                    parent: order_ref.clone(),
                    raised_at,
                    trade,
                    contractor,
                },
                work_class,
                tenancy,
                messages,
                writer,
            )?;
        }
        let shown = |at: Option<DateTime<Utc>>| {
            at.filter(|at| at.date_naive() < self.end)
                .map(rfc3339)
                .unwrap_or_default()
        };
        let (completed, cancelled) = (shown(completed_at), shown(cancelled_at));
        let visible_raise = if raised_at.date_naive() < self.end {
            rfc3339(raised_at)
        } else {
            String::new()
        };
        if reported_at.date_naive() < self.end && !visible_raise.is_empty() {
            writer.row(
                "truth/work_orders.csv",
                &[
                    &order_ref,
                    request_ref.as_deref().unwrap_or_default(),
                    &property.id,
                    &priority.to_string(),
                    work_class,
                    &rfc3339(reported_at),
                    &visible_raise,
                    &completed,
                    &cancelled,
                    contractor,
                    trade,
                    if occupied { "true" } else { "false" },
                    &current_priority.to_string(),
                    &shown(priority_changed_at),
                    parent.as_deref().unwrap_or_default(),
                ],
            )?;
        }
        Ok(())
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
