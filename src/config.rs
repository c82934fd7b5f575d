//! The typed configuration tree: `config/default.toml` built in, or a file given with
//! `--config`. Each component owns its section's struct; this file only assembles them and
//! reports every problem at once, naming the file and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use connectors::SourceConfig;
use mdm::MdmConfig;
use pipeline::kafka::KafkaConfig;
use pipeline::stage::StageConfig;
use serde::Deserialize;
use sql::AnalyticsConfig;

/// The built-in configuration: the sample landlord written by `goldthread generate`.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder the sources' paths are relative to.
    pub data_dir: PathBuf,
    /// Serve webhooks and logical replication on the embedded broker without PostgreSQL,
    /// knowing that what they acknowledge is forgotten when the process stops (demos and
    /// tests). Without it such a run is refused at startup.
    #[serde(default)]
    pub allow_volatile_acknowledgements: bool,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub stage: StageConfig,
    #[serde(default)]
    pub mdm: MdmConfig,
    #[serde(default)]
    pub analytics: AnalyticsConfig,
    /// The recording standard and its issue register (`mdm::quality`).
    #[serde(default)]
    pub quality: mdm::quality::QualityConfig,
    #[serde(default)]
    pub postgres: mdm::store::PostgresConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Debezium topics to ingest (`config/sources.md`, "Debezium sources").
    #[serde(default)]
    pub debezium: Vec<connectors::DebeziumConfig>,
    /// Endpoints contractors post job updates to (`config/sources.md`, "Webhooks").
    #[serde(default)]
    pub webhooks: Vec<connectors::WebhookConfig>,
    /// Tables of source databases polled on a monotonic column (`config/sources.md`,
    /// "PostgreSQL sources").
    #[serde(default)]
    pub postgres_sources: Vec<connectors::PgSourceConfig>,
}

impl Config {
    /// Every configured source, of every kind.
    pub fn all_sources(&self) -> impl Iterator<Item = &dyn connectors::Source> {
        let files = self.sources.iter().map(|s| s as &dyn connectors::Source);
        let debezium = self.debezium.iter().map(|s| s as &dyn connectors::Source);
        let webhooks = self.webhooks.iter().map(|s| s as &dyn connectors::Source);
        let tables = self
            .postgres_sources
            .iter()
            .map(|s| s as &dyn connectors::Source);
        files.chain(debezium).chain(tables).chain(webhooks)
    }

    /// The entity topics the sources produce to, sorted, each once.
    pub fn entity_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .all_sources()
            .flat_map(|source| {
                source
                    .entities()
                    .into_iter()
                    .map(|entity| self.kafka.topic(source.system(), entity))
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// `[http]`: the API, metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port (printed at start).
    pub listen: String,
    /// API tokens; every endpoint but `/health` needs one.
    pub tokens: Vec<crate::auth::TokenConfig>,
    /// Connections served at once; further ones wait in the listen backlog. At startup the
    /// process raises its open-file limit to the hard limit, and keeps this under it.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head within this is closed (also
    /// the idle time allowed between keep-alive requests).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: std::time::Duration,
    /// A request (reading its body, and its answer) taking longer is answered 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        use crate::auth::{Role, TokenConfig};
        let token = |name: &str, role, secret_env: &str| TokenConfig {
            name: name.into(),
            role,
            secret_env: secret_env.into(),
        };
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            tokens: vec![
                token("viewer", Role::Viewer, "GOLDTHREAD_VIEWER_TOKEN"),
                token("steward", Role::Steward, "GOLDTHREAD_STEWARD_TOKEN"),
                token("admin", Role::Admin, "GOLDTHREAD_ADMIN_TOKEN"),
            ],
            max_connections: 10_000,
            header_read_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// `--config` and `--data-dir`: how every command that reads the sources finds them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder the sources' paths are relative to (overrides `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration file (or the built-in one), with `--data-dir` applied.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let mut loaded = Loaded::load(self.config.as_deref())?;
        if let Some(data_dir) = &self.data_dir {
            loaded.config.data_dir = data_dir.clone();
        }
        Ok(loaded)
    }
}

/// A configuration and where it came from (for messages and relative paths).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub origin: String,
}

impl Loaded {
    /// Loads `path`, or the built-in default. Relative paths in a file resolve against its
    /// folder; in the built-in default, against the current directory.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
        let (text, origin, base) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (text, path.display().to_string(), base)
            }
            None => (
                DEFAULT_CONFIG.to_string(),
                "built-in config/default.toml".to_string(),
                PathBuf::new(),
            ),
        };
        let mut config: Config =
            toml::from_str(&text).map_err(|error| anyhow::anyhow!("{origin}: {error}"))?;
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        if let Some(model) = &mut config.mdm.person_model
            && model.is_relative()
        {
            *model = base.join(&*model);
        }
        let loaded = Loaded { config, origin };
        loaded.validate()?;
        Ok(loaded)
    }

    /// Every problem in the configuration, at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        // Every source, whatever its kind: a unique name and a valid entry.
        let mut names = std::collections::BTreeSet::new();
        let mut per_section: BTreeMap<&str, usize> = BTreeMap::new();
        for source in self.config.all_sources() {
            let section = source.section();
            let index = per_section.entry(section).or_default();
            let name = source.name();
            if !names.insert(name) {
                problems.push(format!("{section}[{index}].name: `{name}` is used twice"));
            }
            if let Err(error) = source.validate() {
                problems.push(format!("{section}[{index}]: {error}"));
            }
            *index += 1;
        }
        for (index, webhook) in self.config.webhooks.iter().enumerate() {
            for token in &webhook.tokens {
                if !self.config.http.tokens.iter().any(|t| &t.name == token) {
                    problems.push(format!(
                        "webhooks[{index}].tokens: no [[http.tokens]] entry named `{token}`"
                    ));
                }
            }
        }
        if let Err(error) = self.config.analytics.targets() {
            problems.push(error.to_string());
        }
        if self.config.kafka.partitions < 1 {
            problems.push("kafka.partitions: must be at least 1".into());
        }
        if let Err(problem) = self
            .config
            .kafka
            .security
            .validate(|name| std::env::var(name).ok())
        {
            problems.push(problem);
        }
        problems.extend(crate::auth::problems(&self.config.http.tokens));
        for (key, problem) in self.config.mdm.problems() {
            problems.push(format!("{key}: {problem}"));
        }
        if self.config.stage.batch_size == 0 {
            problems.push("stage.batch_size: must be at least 1".into());
        }
        if let Err(problem) = mdm::quality::Standard::from_config(&self.config.quality) {
            problems.push(problem);
        }
        for (index, notify) in self.config.quality.notify.iter().enumerate() {
            if notify.url_env.trim().is_empty() || notify.owner.trim().is_empty() {
                problems.push(format!(
                    "quality.notify[{index}]: name the `owner` and the `url_env` holding the webhook's URL"
                ));
            }
        }
        if self.config.quality.notify_every.is_some() && self.config.quality.notify.is_empty() {
            problems.push("quality.notify_every: no [[quality.notify]] to send to".into());
        }
        if !problems.is_empty() {
            bail!(
                "{}: invalid configuration:\n  - {}",
                self.origin,
                problems.join("\n  - ")
            );
        }
        Ok(())
    }
}

impl Loaded {
    /// Whether `run` can run this configuration: it has sources, and nothing it acknowledges
    /// (a webhook's 202 when serving, a replication slot advanced) is lost when the process
    /// stops, unless `allow_volatile_acknowledgements` accepts that: on the embedded broker
    /// only the store keeps it.
    pub fn check_runnable(&self, once: bool) -> anyhow::Result<()> {
        let config = &self.config;
        if config.all_sources().next().is_none() {
            bail!(
                "{}: no [[sources]], [[debezium]], [[postgres_sources]] or [[webhooks]] configured",
                self.origin
            );
        }
        let embedded = config.kafka.bootstrap_servers.is_none();
        if !embedded || config.postgres.url.is_some() || config.allow_volatile_acknowledgements {
            return Ok(());
        }
        let webhooks = config
            .webhooks
            .iter()
            .filter(|_| !once)
            .map(|webhook| format!("webhook `{}` answers 202", webhook.name));
        let slots = config
            .postgres_sources
            .iter()
            .filter(|source| source.mode == connectors::pg::Mode::Logical)
            .map(|source| {
                format!(
                    "postgres source `{}` advances its replication slot",
                    source.name
                )
            });
        let volatile: Vec<String> = webhooks.chain(slots).collect();
        if !volatile.is_empty() {
            bail!(
                "{}: {}, but on the embedded broker without PostgreSQL what is acknowledged is lost when the process stops. Set postgres.url (or --postgres) to keep it, or kafka.bootstrap_servers for a real broker and postgres.url; or set allow_volatile_acknowledgements = true to accept the loss (demos, tests)",
                self.origin,
                volatile.join("; ")
            );
        }
        Ok(())
    }

    /// What the configured sources (files, Debezium, PostgreSQL, webhooks) map for persons.
    pub fn person_mapped(&self) -> mdm::person::Mapped {
        let config = &self.config;
        let mappings = config
            .sources
            .iter()
            .flat_map(|source| source.mapping.iter().chain(source.messages.values()))
            .chain(config.debezium.iter().map(|source| &source.mapping))
            .chain(config.postgres_sources.iter().map(|source| &source.mapping))
            .chain(
                config
                    .webhooks
                    .iter()
                    .flat_map(|hook| hook.mapping.iter().chain(hook.messages.values())),
            );
        let mut mapped = mdm::person::Mapped::default();
        for mapping in mappings.filter(|m| m.entity_kind() == Some(pipeline::EntityKind::Person)) {
            mapped.fields.extend(mapping.fields.keys().cloned());
            mapped
                .identifiers
                .extend(mapping.identifiers.keys().cloned());
        }
        mapped
    }

    /// The person model `train`, `link` and `eval` train: `[mdm.person]` over what the
    /// sources map.
    pub fn person_spec(&self) -> mdm::model::ModelSpec {
        mdm::person::spec_for(&self.person_mapped(), self.config.mdm.person.as_ref())
    }

    /// A hub with the configured person model (`mdm.person_model`), or the built-in one.
    /// The recording standard (`[quality]`, checked by `validate`).
    pub fn standard(&self) -> anyhow::Result<mdm::quality::Standard> {
        mdm::quality::Standard::from_config(&self.config.quality)
            .map_err(|problem| anyhow::anyhow!("{}: {problem}", self.origin))
    }

    pub fn hub(&self) -> anyhow::Result<mdm::Hub> {
        let mdm = self.config.mdm.clone();
        match &mdm.person_model {
            None => {
                let hub = mdm::Hub::new(mdm);
                // Nothing mapped is silently ignored: say what the built-in model leaves out.
                let used = &hub.person_model().spec.comparisons;
                let unused: Vec<String> = self
                    .person_spec()
                    .comparisons
                    .into_iter()
                    .filter(|wanted| !used.iter().any(|c| c.field == wanted.field))
                    .map(|c| c.field)
                    .collect();
                if !unused.is_empty() {
                    tracing::warn!(
                        fields = %unused.join(", "),
                        "the built-in person model does not compare these mapped person fields; train a model on your data (`goldthread train`) and set mdm.person_model"
                    );
                }
                Ok(hub)
            }
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("mdm.person_model: reading {}", path.display()))?;
                let model = mdm::person::load_model(&text).map_err(|error| {
                    anyhow::anyhow!("mdm.person_model: {}: {error}", path.display())
                })?;
                Ok(mdm::Hub::with_model(mdm, model))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_default_parses_and_validates() {
        let loaded = Loaded::load(None).unwrap();
        assert_eq!(loaded.config.sources.len(), 7);
        assert_eq!(loaded.config.data_dir, PathBuf::from("data/sample"));
        assert_eq!(
            loaded.config.stage.batch_wait,
            std::time::Duration::from_millis(50)
        );
    }

    #[test]
    fn every_config_file_in_config_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut files = vec![root.join("default.toml")];
        for entry in std::fs::read_dir(root.join("examples")).unwrap() {
            files.push(entry.unwrap().path());
        }
        for file in files
            .iter()
            .filter(|file| file.extension().is_some_and(|ext| ext == "toml"))
        {
            let loaded = Loaded::load(Some(file))
                .unwrap_or_else(|error| panic!("{}: {error:#}", file.display()));
            assert!(!loaded.config.sources.is_empty(), "{}", file.display());
        }
        assert!(
            files.len() >= 2,
            "config/examples holds at least one example"
        );
    }

    #[test]
    fn problems_are_reported_together_with_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            r#"
            data_dir = "."
            [kafka]
            partitions = 0
            [mdm]
            blocking = [["surname"]]
            [mdm.thresholds]
            link = 0.9
            review = 0.95
            [mdm.survivorship]
            shoe_size = "most_recent"
            [[sources]]
            name = "a"
            system = "hms"
            path = "a.csv"
            format = "csv"
            [sources.mapping]
            entity = "tenant"
            id = "id"
            [[sources]]
            name = "a"
            system = "hms"
            path = "b.csv"
            format = "csv"
            [sources.mapping]
            entity = "person"
            id = "id"
            "#,
        )
        .unwrap();
        let message = format!("{:#}", Loaded::load(Some(&path)).unwrap_err());
        for expected in [
            "bad.toml: invalid configuration",
            "kafka.partitions",
            "sources[1].name: `a` is used twice",
            "unknown entity `tenant`",
            "mdm.blocking[0]: unknown person field `surname`",
            "mdm.thresholds: need 0 < review (0.95) <= link (0.9) < 1",
            "mdm.survivorship.shoe_size: unknown attribute",
        ] {
            assert!(message.contains(expected), "{expected:?} not in {message}");
        }
    }

    #[test]
    fn every_kind_of_source_shares_one_namespace_and_gives_its_topics() {
        let dir = tempfile::tempdir().unwrap();
        let config = |webhook: &str| {
            let path = dir.path().join(format!("{webhook}.toml"));
            std::fs::write(
                &path,
                format!(
                    r#"
                    data_dir = "."
                    [[http.tokens]]
                    name = "contractor"
                    role = "contractor"
                    secret_env = "GOLDTHREAD_TEST_TOKEN"
                    [[sources]]
                    name = "jobs"
                    system = "hms"
                    path = "tenants.csv"
                    format = "csv"
                    [sources.mapping]
                    entity = "person"
                    id = "id"
                    [[webhooks]]
                    name = "{webhook}"
                    system = "repairs"
                    tokens = ["contractor"]
                    message_id = "messageId"
                    [webhooks.mapping]
                    entity = "work_order_update"
                    id = "messageId"
                    fields = {{ work_order_ref = "job", status = "status", status_at = "at" }}
                    "#
                ),
            )
            .unwrap();
            Loaded::load(Some(&path))
        };
        let message = format!("{:#}", config("jobs").unwrap_err());
        assert!(
            message.contains("webhooks[0].name: `jobs` is used twice"),
            "{message}"
        );
        let loaded = config("contractor").unwrap_or_else(|error| panic!("{error:#}"));
        let topics = loaded.config.entity_topics();
        assert_eq!(topics.len(), 2, "{topics:?}");
        assert!(
            topics
                .iter()
                .any(|t| t.contains("hms") && t.contains("person"))
        );
        assert!(topics.iter().any(|t| t.contains("repairs")), "{topics:?}");
    }

    #[test]
    fn unknown_keys_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.toml");
        std::fs::write(&path, "data_dir = '.'\n[kafka]\nbootstrap = 'x'\n").unwrap();
        let message = format!("{:#}", Loaded::load(Some(&path)).unwrap_err());
        assert!(
            message.contains("typo.toml") && message.contains("bootstrap"),
            "{message}"
        );
    }
}
