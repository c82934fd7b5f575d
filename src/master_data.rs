//! The master data sources read once, without a broker, and matched in one pass: what
//! `link`, `eval`, `sar` and `quality-report` start from. Files are read a file per core
//! through the connectors' reading loop (`connectors::driver::files::read_all`).

use anyhow::{Context, bail};
use connectors::Source as _;
use indicatif::{ProgressBar, ProgressStyle};
use mdm::{Hub, NormalisedPersons};
use pipeline::{DeadLetter, EntityKind, Envelope};
use serde::Serialize;

use crate::config::Loaded;

/// Rows read from one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRead {
    pub name: String,
    pub system: String,
    pub rows: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// Values of optional fields that did not parse: the records flowed, these are findings.
    pub unparsed: connectors::mapping::UnparsedTally,
}

/// The report's names for what `connectors::SourceCounts` counted (nothing is produced here).
impl From<connectors::SourceCounts> for SourceRead {
    fn from(counts: connectors::SourceCounts) -> SourceRead {
        SourceRead {
            name: counts.name,
            system: counts.system,
            rows: counts.rows_read,
            events: counts.events_produced,
            dead_letters: counts.dead_letters,
            unparsed: counts.unparsed,
        }
    }
}

/// The master data events of the configured sources, in file order.
pub struct Input {
    pub events: Vec<Envelope>,
    pub sources: Vec<SourceRead>,
    pub dead_letters: Vec<DeadLetter>,
}

const MASTER_DATA: &[EntityKind] = &[
    EntityKind::Person,
    EntityKind::Property,
    EntityKind::Tenancy,
    EntityKind::Vulnerability,
];

/// Reads every configured source that carries master data, with a spinner per source.
pub fn read(loaded: &Loaded, progress: bool) -> anyhow::Result<Input> {
    let config = &loaded.config;
    let mut files = Vec::new();
    for source in config
        .sources
        .iter()
        .filter(|source| source.entities().iter().any(|e| MASTER_DATA.contains(e)))
    {
        // Every file of a drop folder, as `run` reads them.
        files.extend(
            source
                .expand(&config.data_dir)
                .with_context(|| format!("source `{}`", source.name))?,
        );
    }
    let bars = indicatif::MultiProgress::new();
    if !progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let read = connectors::driver::files::read_all(&files, &config.data_dir, &bars)?;
    let input = Input {
        events: read.events,
        sources: read.counts.into_iter().map(SourceRead::from).collect(),
        dead_letters: read.dead_letters,
    };
    if input.sources.is_empty() {
        bail!("{}: no source maps persons or properties", loaded.origin);
    }
    Ok(input)
}

/// Applies events to a hub with a progress bar. `persons` are the events' persons
/// normalised for the hub's model (see [`model_for`]), or `None` to normalise them here.
pub fn apply(
    hub: &mut Hub,
    events: &[Envelope],
    persons: Option<NormalisedPersons>,
    progress: bool,
) {
    let bar = if progress {
        ProgressBar::new(events.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:<20} [{bar:30}] {pos:>9}/{len} records {per_sec:>12} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix("matching");
    let persons =
        persons.unwrap_or_else(|| NormalisedPersons::of(events, &hub.person_model().spec.fields));
    hub.apply_all(events, persons, |index| {
        if index % 1024 == 0 {
            bar.set_position(index as u64);
        }
    });
    bar.finish_with_message("done");
}
