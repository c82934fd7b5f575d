//! The files driver: file exports and drop folders (`[[sources]]`) read to the end and
//! produced to Kafka, one spinner per file; in a served run, drop folders watched for new
//! files, each read once it is complete and remembered as read once what it produced is
//! durable (`Positions`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pipeline::kafka::Cluster;
use pipeline::{DeadLetter, Envelope};
use tokio::sync::watch;

use super::{Output, Positions};
use crate::{Error, FileSource, Record, Result, SourceConfig, SourceCounts};

/// How long a dropped file must go unmodified before it is read: the rest of a file still
/// being written would otherwise be lost (its first part read, the file remembered as read).
/// Writing under a name the pattern does not match (or starting with `.`) and renaming it
/// into place also works, at once.
const SETTLE: Duration = Duration::from_secs(2);

/// Whether a file has gone unmodified for [`SETTLE`].
fn settled(metadata: &std::fs::Metadata) -> bool {
    metadata
        .modified()
        .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= SETTLE))
}

/// Opens every file of `sources` (each file of a drop folder, once it is complete), or says
/// every file that cannot be opened, and why.
pub async fn open(
    sources: &[SourceConfig],
    data_dir: &Path,
) -> Result<Vec<FileSource>, Vec<String>> {
    let (mut opened, mut problems) = (Vec::new(), Vec::new());
    for source in sources {
        let files = match source.expand(data_dir) {
            Ok(files) => files,
            Err(error) => {
                problems.push(format!("source `{}`: {error}", source.name));
                continue;
            }
        };
        for file in files {
            if file.dropped {
                // A file still being written is read once it is complete.
                let path = data_dir.join(&file.path);
                while std::fs::metadata(&path).is_ok_and(|metadata| !settled(&metadata)) {
                    tokio::time::sleep(SETTLE / 4).await;
                }
            }
            match FileSource::open(&file, data_dir) {
                Ok(source) => opened.push(source),
                Err(error) => problems.push(error.to_string()),
            }
        }
    }
    if problems.is_empty() {
        Ok(opened)
    } else {
        Err(problems)
    }
}

/// The spinner of one file's reading.
pub fn spinner(bars: &MultiProgress, name: &str) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{spinner} {prefix:<20} {pos:>9} rows {per_sec:>12} {msg}")
            .expect("valid template");
    bars.add(ProgressBar::new_spinner())
        .with_style(style)
        .with_prefix(name.to_string())
}

/// The reading loop every use of a file shares: each record counted, the spinner moved, and
/// handed to `sink`; the counts once the file is read.
pub fn read(
    source: &mut FileSource,
    bar: &ProgressBar,
    mut sink: impl FnMut(Record) -> Result<()>,
) -> Result<SourceCounts> {
    let config = source.config().clone();
    let mut counts = SourceCounts::new(
        &config.name,
        &config.system,
        config.path.display().to_string(),
    );
    while let Some(record) = source.next_record() {
        let record = record.map_err(Error::in_source("file", &config.name))?;
        counts.count(&record);
        sink(record)?;
        bar.inc(1);
    }
    bar.finish_with_message(format!(
        "{} events, {} dead letters",
        counts.events_produced, counts.dead_letters
    ));
    Ok(counts)
}

/// What reading files into memory gave.
#[derive(Debug, Default)]
pub struct Read {
    pub counts: Vec<SourceCounts>,
    /// Every event, in file order.
    pub events: Vec<Envelope>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Reads files to the end into memory (`goldthread link`), a file per core, one spinner each
/// in `bars`; the events keep the files' order.
pub fn read_all(files: &[SourceConfig], data_dir: &Path, bars: &MultiProgress) -> Result<Read> {
    let read_one = |config: &SourceConfig| -> Result<_> {
        let mut source =
            FileSource::open(config, data_dir).map_err(Error::in_source("file", &config.name))?;
        let (mut events, mut dead_letters) = (Vec::new(), Vec::new());
        let counts = read(&mut source, &spinner(bars, &config.name), |record| {
            match record {
                Record::Event(envelope) => events.push(*envelope),
                Record::DeadLetter(dead_letter) => dead_letters.push(dead_letter),
            }
            Ok(())
        })?;
        Ok((counts, events, dead_letters))
    };
    let mut read = Read::default();
    for result in pipeline::parallel::map(files, read_one) {
        let (counts, events, dead_letters) = result?;
        read.counts.push(counts);
        if read.events.is_empty() {
            read.events = events; // the first file's events are not copied
        } else {
            read.events.extend(events);
        }
        read.dead_letters.extend(dead_letters);
    }
    Ok(read)
}

/// What producing files gave.
#[derive(Debug, Default)]
pub struct Produced {
    pub counts: Vec<SourceCounts>,
    /// Events produced, per topic.
    pub per_topic: BTreeMap<String, u64>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Records a file's reading thread hands to the producer at most ahead of it.
const READ_AHEAD: usize = 4096;

/// Reads every file to the end, producing its events and dead letters. Each file is read on
/// a blocking thread (`read`), its records produced as they come.
pub async fn produce(cluster: &Cluster, sources: Vec<FileSource>) -> Result<Produced> {
    let mut producer = cluster.producer()?;
    let mut produced = Produced::default();
    let bars = MultiProgress::new();
    for mut source in sources {
        let config = source.config().clone();
        let bar = spinner(&bars, &config.name);
        let (sender, mut receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
        let reading = tokio::task::spawn_blocking(move || {
            read(&mut source, &bar, |record| {
                sender
                    .blocking_send(record)
                    .map_err(|_| Error::Unavailable("the producer stopped".into()))
            })
        });
        // Counted by the reading loop; the output's counts name the source only.
        let named = SourceCounts::new(&config.name, &config.system, String::new());
        let mut output = Output::new(cluster, &mut producer, named);
        output.dead_letters = Some(Vec::new());
        let sent = async {
            while let Some(record) = receiver.recv().await {
                output.send(record).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        // A failed send stops the reader (its channel closes) before its error is reported.
        drop(receiver);
        let counts = reading.await.map_err(|failed| {
            Error::Unavailable(format!("reading `{}`: {failed}", config.name))
        })??;
        sent?;
        for (topic, events) in output.per_topic {
            *produced.per_topic.entry(topic).or_default() += events;
        }
        produced
            .dead_letters
            .extend(output.dead_letters.unwrap_or_default());
        produced.counts.push(counts);
    }
    producer.flush().await?;
    Ok(produced)
}

/// In a served run: looks in each watched drop folder (`watch`) for files not read yet
/// (`read`: the drop keys of the files read at startup) and reads them as they arrive; each is confirmed read
/// (`<source>/<file name>` in `positions`) once what it produced to `topics` is durable.
pub fn watch_drop_folders<P: Positions>(
    cluster: &Arc<Cluster>,
    positions: &Arc<P>,
    topics: &[String],
    data_dir: &Path,
    configs: &[SourceConfig],
    read: &[String],
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let known: BTreeSet<String> = read.iter().cloned().collect();
    configs
        .iter()
        .filter_map(|config| Some((config.clone(), config.watch?)))
        .map(|(config, every)| {
            let (cluster, positions, mut shutdown) =
                (cluster.clone(), positions.clone(), shutdown.clone());
            let (topics, data_dir) = (topics.to_vec(), data_dir.to_path_buf());
            let prefix = format!("{}/", config.name);
            let mut known: BTreeSet<String> = known
                .iter()
                .filter(|key| key.starts_with(&prefix))
                .cloned()
                .collect();
            tokio::spawn(async move {
                // A new file's size and modification time at the previous look: it is read
                // once they have not changed since, and it has settled.
                let mut seen: BTreeMap<String, (u64, SystemTime)> = BTreeMap::new();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    let look = Look {
                        cluster: &cluster,
                        positions: &*positions,
                        topics: &topics,
                        data_dir: &data_dir,
                    };
                    if let Err(error) = look.read_new(&config, &mut known, &mut seen).await {
                        tracing::error!(source = %config.name, error = %pipeline::error::chain(&error), "reading a drop folder");
                    }
                }
            })
        })
        .collect()
}

/// One look into a drop folder.
struct Look<'a, P> {
    cluster: &'a Cluster,
    positions: &'a P,
    topics: &'a [String],
    data_dir: &'a PathBuf,
}

impl<P: Positions> Look<'_, P> {
    /// Reads the folder's new files that have settled and are unchanged since the last look.
    async fn read_new(
        &self,
        config: &SourceConfig,
        known: &mut BTreeSet<String>,
        seen: &mut BTreeMap<String, (u64, SystemTime)>,
    ) -> Result<()> {
        let mut new = Vec::new();
        for file in config.expand(self.data_dir)? {
            let key = file.drop_key().unwrap_or_default();
            if known.contains(&key) {
                continue;
            }
            let path = self.data_dir.join(&file.path);
            let metadata = std::fs::metadata(&path).map_err(|error| Error::io(&path, error))?;
            let modified = metadata
                .modified()
                .map_err(|error| Error::io(&path, error))?;
            let state = (metadata.len(), modified);
            let unchanged = seen.insert(key.clone(), state) == Some(state);
            if !unchanged || !settled(&metadata) {
                continue;
            }
            if self.positions.position(&key).await?.is_some() {
                known.insert(key);
            } else {
                new.push(FileSource::open(&file, self.data_dir)?);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = new
            .iter()
            .map(|source| source.config().drop_key().unwrap_or_default())
            .collect();
        let produced = produce(self.cluster, new).await?;
        self.positions.durable(self.topics).await?;
        for key in keys {
            self.positions.confirm(&key, "read").await?;
            seen.remove(&key);
            known.insert(key);
        }
        for count in produced.counts {
            tracing::info!(source = %count.name, file = %count.path, events = count.events_produced, dead_letters = count.dead_letters, "dropped file read");
        }
        Ok(())
    }
}
