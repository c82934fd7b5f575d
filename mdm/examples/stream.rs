//! Streaming benchmark: how fast the hub takes people into a large index, and how long one
//! new person takes to match against it. Every record goes through `Hub::apply`, the path
//! `goldthread run` uses: normalisation, the person model's blocking and scoring against the
//! index, and the incremental cluster update with golden ids.
//!
//!   cargo run --release -p mdm --example stream -- [--persons 1000000] [--probes 20000] [--seed 1]
//!
//! The people are synthetic, with UK-like skew: given names and family names drawn from a
//! Zipf-Mandelbrot distribution over generated vocabularies (5,000 and 60,000 names), dates of birth over
//! 75 years, NINOs, mobiles, some emails, postcodes. A third of the stream (and of the probes)
//! are second records of people already indexed, written differently (a typo, a day/month
//! swap, a missing date of birth or NINO, a new phone), so matching does real work.

use std::time::Instant;

// The allocator the `goldthread` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{NaiveDate, Utc};
use mdm::{Hub, MdmConfig};
use pipeline::entity::Person;
use pipeline::{Envelope, Op, Payload, Reference, Source};

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Ranks drawn with probability proportional to 1/(rank + offset) (Zipf-Mandelbrot;
/// cumulative table, binary search).
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, offset: f64) -> Zipf {
        let mut total = 0.0;
        Zipf(
            (1..=n)
                .map(|rank| {
                    total += 1.0 / (rank as f64 + offset);
                    total
                })
                .collect(),
        )
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let target = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * self.0[self.0.len() - 1];
        self.0
            .partition_point(|&c| c < target)
            .min(self.0.len() - 1)
    }
}

/// Pronounceable names from syllables: distinct, deterministic.
fn vocabulary(n: usize, rng: &mut Rng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "br", "c", "ch", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "sh",
        "st", "t", "th", "v", "w", "y", "z",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ie", "ou"];
    const CODAS: &[&str] = &[
        "", "n", "r", "s", "l", "m", "th", "ck", "tt", "ley", "son", "ton", "well", "worth",
    ];
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::with_capacity(n);
    while names.len() < n {
        let syllables = 1 + rng.below(3);
        let mut name = String::new();
        for _ in 0..syllables {
            name.push_str(ONSETS[rng.below(ONSETS.len())]);
            name.push_str(VOWELS[rng.below(VOWELS.len())]);
        }
        name.push_str(CODAS[rng.below(CODAS.len())]);
        if name.len() >= 3 && seen.insert(name.clone()) {
            let mut chars = name.chars();
            let first = chars.next().expect("non-empty").to_ascii_uppercase();
            names.push(std::iter::once(first).chain(chars).collect());
        }
    }
    names
}

struct World {
    given: Vec<String>,
    family: Vec<String>,
    given_rank: Zipf,
    family_rank: Zipf,
}

fn nino(rng: &mut Rng) -> String {
    const LETTERS: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
    loop {
        let candidate = format!(
            "{}{}{:06}{}",
            LETTERS[rng.below(LETTERS.len())] as char,
            LETTERS[rng.below(LETTERS.len())] as char,
            rng.below(1_000_000),
            b"ABCD"[rng.below(4)] as char
        );
        if matches!(
            mdm::normalise::nino(&candidate),
            Some(mdm::normalise::Nino::Valid(_))
        ) {
            return candidate;
        }
    }
}

fn postcode(rng: &mut Rng) -> String {
    const AREAS: &[&str] = &["LS", "BD", "HX", "WF", "M", "S", "L", "B", "NE", "SE"];
    const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    format!(
        "{}{} {}{}{}",
        AREAS[rng.below(AREAS.len())],
        1 + rng.below(20),
        rng.below(10),
        UNIT[rng.below(UNIT.len())] as char,
        UNIT[rng.below(UNIT.len())] as char
    )
}

fn person(world: &World, rng: &mut Rng) -> Person {
    let given = world.given[world.given_rank.sample(rng)].clone();
    let family = world.family[world.family_rank.sample(rng)].clone();
    let born = NaiveDate::from_ymd_opt(1931, 1, 1).expect("valid date")
        + chrono::Duration::days(rng.below(75 * 365) as i64);
    Person {
        email: rng.chance(0.4).then(|| {
            format!(
                "{}.{}{}@example.com",
                given.to_lowercase(),
                family.to_lowercase(),
                rng.below(100)
            )
        }),
        given_name: Some(given),
        family_name: Some(family),
        date_of_birth: Some(born),
        nino: rng.chance(0.85).then(|| nino(rng)),
        phone: Some(format!("07{:09}", rng.below(1_000_000_000))),
        postcode: Some(postcode(rng)),
        ..Person::default()
    }
}

/// A second record of the same person, written differently.
fn variant(original: &Person, rng: &mut Rng) -> Person {
    let mut copy = original.clone();
    match rng.below(5) {
        0 => {
            // A typo: two adjacent letters of the family name swapped.
            if let Some(family) = &mut copy.family_name
                && family.len() > 3
            {
                let mut bytes = family.clone().into_bytes();
                let at = 1 + rng.below(bytes.len() - 2);
                bytes.swap(at, at + 1);
                *family = String::from_utf8(bytes).expect("ascii");
            }
        }
        1 => {
            // Day and month swapped, where the day can be a month.
            use chrono::Datelike;
            copy.date_of_birth = copy.date_of_birth.map(|date| {
                NaiveDate::from_ymd_opt(date.year(), date.day(), date.month()).unwrap_or(date)
            });
        }
        2 => copy.date_of_birth = None,
        3 => copy.nino = None,
        _ => copy.phone = Some(format!("07{:09}", rng.below(1_000_000_000))),
    }
    copy.email = None;
    copy
}

fn event(system: &str, id: usize, person: Person) -> Envelope {
    let id = format!("{id:08}");
    Envelope {
        event_id: Envelope::event_id_for(system, &id),
        event_type: "person.upserted.v1".into(),
        source: Source {
            system: system.into(),
            instance: system.into(),
            op: Op::Read,
            position: id.clone(),
        },
        source_ref: Reference {
            id,
            allocated_by: system.into(),
        },
        occurred_at: None,
        recorded_at: None,
        ingested_at: Utc::now(),
        payload: Payload::Person(person),
        unparsed: Default::default(),
    }
}

/// A memory figure of this process from /proc/self/status (Linux), in MiB: `VmHWM` (peak
/// resident) or `VmRSS` (resident now).
fn memory_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn argument(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .map(|value| {
            value
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {value}"))
        })
        .unwrap_or(default)
}

fn main() {
    let persons = argument("--persons", 1_000_000);
    let probes = argument("--probes", 20_000);
    let mut rng = Rng(argument("--seed", 1) as u64);
    let world = World {
        given: vocabulary(5_000, &mut rng),
        family: vocabulary(60_000, &mut rng),
        // The commonest given name 1.5 % of people, the commonest family name 1.05 % (Smith
        // is about 1.1 % in England and Wales).
        given_rank: Zipf::new(5_000, 10.0),
        family_rank: Zipf::new(60_000, 10.0),
    };

    // The stream: two thirds new people, one third second records of people already in it.
    let started = Instant::now();
    let mut originals: Vec<usize> = Vec::new();
    let mut stream: Vec<Envelope> = Vec::with_capacity(persons);
    let mut truth: Vec<usize> = Vec::with_capacity(persons + probes);
    for id in 0..persons + probes {
        if !originals.is_empty() && rng.chance(1.0 / 3.0) {
            let of = originals[rng.below(originals.len())];
            let Payload::Person(original) = &stream[of].payload else {
                unreachable!()
            };
            let copy = variant(original, &mut rng);
            truth.push(truth[of]);
            stream.push(event("crm", id, copy));
        } else {
            let fresh = person(&world, &mut rng);
            truth.push(id);
            if id < persons {
                originals.push(id);
            }
            stream.push(event("hms", id, fresh));
        }
    }
    let generate_seconds = started.elapsed().as_secs_f64();
    let (indexed, probe_events) = stream.split_at(persons);
    // The generated stream itself is resident too: the index is what grows beyond it.
    let baseline = memory_mib("VmRSS:");

    let mut hub = Hub::new(MdmConfig::default());
    let started = Instant::now();
    for event in indexed {
        hub.apply(event);
    }
    let load_seconds = started.elapsed().as_secs_f64();

    // One new record at a time against the full index, each timed alone.
    let mut latencies: Vec<f64> = Vec::with_capacity(probes);
    for event in probe_events {
        let started = Instant::now();
        hub.apply(event);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];

    // Did the probes land where they belong? (A check that matching did its work.)
    let (mut found, mut duplicates, mut wrongly_joined, mut fresh) = (0, 0, 0, 0);
    let golden_of = |index: usize| {
        let event = &stream[index];
        hub.golden_ids_of(&event.source_ref)[0].1.to_string()
    };
    for (offset, _) in probe_events.iter().enumerate() {
        let index = persons + offset;
        let own = golden_of(index);
        if truth[index] != index {
            duplicates += 1;
            found += usize::from(own == golden_of(truth[index]));
        } else {
            fresh += 1;
            let members = hub
                .golden_person(&own)
                .map_or(0, |person| person.sources.len());
            wrongly_joined += usize::from(members > 1);
        }
    }
    let counts = hub.counts();
    let peak = memory_mib("VmHWM:");

    println!(
        "goldthread streaming benchmark: Hub::apply (normalise, block, score, cluster), one record at a time on one core"
    );
    println!(
        "{:<44} {:>14}",
        "persons indexed",
        counts.person_records - probes
    );
    println!("{:<44} {:>14}", "golden persons", counts.golden_persons);
    println!(
        "{:<44} {:>14.1}",
        "synthetic data generated (s, not timed)", generate_seconds
    );
    println!(
        "{:<44} {:>14.1}",
        "streamed into the index (s)", load_seconds
    );
    println!(
        "{:<44} {:>14.0}",
        "sustained throughput (records/s)",
        persons as f64 / load_seconds
    );
    println!("{:<44} {:>14}", "probes (one new record each)", probes);
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        println!(
            "{:<44} {:>14.1}",
            format!("match latency {name} (µs)"),
            quantile(q)
        );
    }
    println!(
        "{:<44} {:>14.1}",
        "match latency max (µs)",
        sorted[sorted.len() - 1]
    );
    println!(
        "{:<44} {:>13.1}%",
        "probe duplicates joined to their person",
        100.0 * found as f64 / duplicates.max(1) as f64
    );
    println!(
        "{:<44} {:>13.2}%",
        "probe newcomers joined to someone",
        100.0 * wrongly_joined as f64 / fresh.max(1) as f64
    );
    match (peak, baseline) {
        (Some(peak), Some(baseline)) => {
            println!(
                "{:<44} {:>14.0}",
                "peak memory, whole process (MiB, VmHWM)", peak
            );
            println!(
                "{:<44} {:>14.0}",
                "resident before loading: the input (MiB)", baseline
            );
            println!(
                "{:<44} {:>14.0}",
                "hub per person record, approx. (bytes)",
                (peak - baseline) * 1024.0 * 1024.0 / counts.person_records as f64
            );
        }
        _ => println!("{:<44} {:>14}", "peak memory", "n/a (no /proc)"),
    }
    println!(
        "RESULT {}",
        serde_json::json!({
            "persons": persons, "throughput": persons as f64 / load_seconds,
            "p50_us": quantile(0.5), "p99_us": quantile(0.99), "peak_mib": peak,
        })
    );
}
