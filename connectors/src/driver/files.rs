//! The files driver: file exports and drop folders (`[[sources]]`) read to the end and
//! produced to Kafka, one spinner per file; in a served run, drop folders watched for new
//! files, each read once it is complete and remembered as read once what it produced is
//! durable (`Positions`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::DeadLetter;
use pipeline::kafka::Cluster;
use tokio::sync::watch;

use super::{Output, Positions};
use crate::{FileSource, SourceConfig, SourceCounts};

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

/// What reading files produced.
#[derive(Debug, Default)]
pub struct Produced {
    pub counts: Vec<SourceCounts>,
    /// Events produced, per topic.
    pub per_topic: BTreeMap<String, u64>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Reads every file to the end, producing its events and dead letters.
pub async fn produce(cluster: &Cluster, sources: &mut [FileSource]) -> anyhow::Result<Produced> {
    let mut producer = cluster.producer()?;
    let mut produced = Produced::default();
    let style =
        ProgressStyle::with_template("{spinner} {prefix:<20} {pos:>9} rows {per_sec:>12} {msg}")
            .expect("valid template");
    for source in sources {
        let config = source.config().clone();
        let progress = ProgressBar::new_spinner()
            .with_style(style.clone())
            .with_prefix(config.name.clone());
        let counts = SourceCounts::new(
            &config.name,
            &config.system,
            config.path.display().to_string(),
        );
        let mut output = Output::new(cluster, &mut producer, counts);
        output.dead_letters = Some(Vec::new());
        while let Some(record) = source.next_record() {
            let record = record.with_context(|| format!("source `{}`", config.name))?;
            output.emit(record).await?;
            progress.inc(1);
        }
        progress.finish_with_message(format!(
            "{} events, {} dead letters",
            output.counts.events_produced, output.counts.dead_letters
        ));
        for (topic, events) in output.per_topic {
            *produced.per_topic.entry(topic).or_default() += events;
        }
        produced
            .dead_letters
            .extend(output.dead_letters.unwrap_or_default());
        produced.counts.push(output.counts);
    }
    producer.flush().await?;
    Ok(produced)
}

/// In a served run: looks in each watched drop folder (`watch`) for files not read yet
/// (`read`: the files read at startup) and reads them as they arrive; each is confirmed read
/// (`<source>/<file name>` in `positions`) once what it produced to `topics` is durable.
pub fn watch_drop_folders<P: Positions>(
    cluster: &Arc<Cluster>,
    positions: &Arc<P>,
    topics: &[String],
    data_dir: &Path,
    configs: &[SourceConfig],
    read: &[FileSource],
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let known: BTreeSet<String> = read
        .iter()
        .filter_map(|source| source.config().drop_key())
        .collect();
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
                        tracing::error!(source = %config.name, error = %format!("{error:#}"), "reading a drop folder");
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
    ) -> anyhow::Result<()> {
        let mut new = Vec::new();
        for file in config.expand(self.data_dir)? {
            let key = file.drop_key().unwrap_or_default();
            if known.contains(&key) {
                continue;
            }
            let metadata = std::fs::metadata(self.data_dir.join(&file.path))?;
            let state = (metadata.len(), metadata.modified()?);
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
        let produced = produce(self.cluster, &mut new).await?;
        self.positions.durable(self.topics).await?;
        for source in &new {
            let key = source.config().drop_key().unwrap_or_default();
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
