//! The master data sources read once, without a broker, and matched in one pass: what
//! `link`, `eval`, `sar` and `quality-report` start from. Files are read a file per core
//! through the connectors' reading loop (`connectors::driver::files::read_all`).

use anyhow::{Context, bail};
use connectors::Source as _;
use indicatif::{ProgressBar, ProgressStyle};
use mdm::reconcile::report::SourceRead;
use mdm::{Hub, NormalisedPersons};
use pipeline::{DeadLetter, EntityKind, Envelope};

use crate::config::Loaded;

/// The report's names for what `connectors::SourceCounts` counted (nothing is produced here).
fn source_read(counts: connectors::SourceCounts) -> SourceRead {
    SourceRead {
        name: counts.name,
        system: counts.system,
        rows: counts.rows_read,
        events: counts.events_produced,
        dead_letters: counts.dead_letters,
        unparsed: counts.unparsed,
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
        sources: read.counts.into_iter().map(source_read).collect(),
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
