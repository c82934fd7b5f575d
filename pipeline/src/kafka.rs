//! Kafka plumbing: the embedded broker, topic names and creation, the event producer and
//! the consumer settings every stage uses. The only module that opens Kafka connections.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::event::{DeadLetter, Envelope};

/// `[kafka]`: where events go. Without `bootstrap_servers` goldthread runs an embedded,
/// in-memory Kafka-protocol broker (librdkafka's mock cluster): nothing to install.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]` of a real cluster. Unset: the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// Topics are `<prefix>.<system>.<entity>`; dead letters go to `<prefix>.deadletter`.
    pub topic_prefix: String,
    /// Consumer group of the downstream stages (MDM and analytics).
    pub group_id: String,
    /// Partitions of each topic goldthread creates.
    pub partitions: i32,
    /// Replication factor of each topic goldthread creates (ignored by the embedded broker).
    pub replication_factor: i32,
    /// Number of brokers in the embedded cluster.
    pub embedded_brokers: i32,
    /// TLS and SASL towards a real cluster.
    pub security: KafkaSecurity,
    /// Extra librdkafka client properties, passed through as given (after `security`, so
    /// they can override it).
    pub properties: BTreeMap<String, String>,
    /// Entities whose topics goldthread creates compacted (`cleanup.policy=compact`): the
    /// latest event of each record is kept, and an erasure's tombstones remove the rest.
    /// Master data by default; repairs topics keep their history (KPIs read every version).
    pub compacted: Vec<crate::EntityKind>,
}

/// `[kafka.security]`: how goldthread authenticates to and encrypts its traffic with a real
/// cluster. The SASL password is read from the environment variable named here, never
/// from the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSecurity {
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: Option<String>,
    /// PEM file of the CA that signed the brokers' certificates (default: the system's).
    pub ca_file: Option<std::path::PathBuf>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with a `sasl_*` protocol).
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    /// The environment variable holding the SASL password.
    pub sasl_password_env: Option<String>,
}

impl KafkaSecurity {
    const PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
    const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

    /// Checks the settings agree with each other, the CA file exists and the password's
    /// variable is set; `env` reads the environment.
    pub fn validate(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<(), String> {
        let protocol = self.protocol.as_deref().unwrap_or("plaintext");
        if !Self::PROTOCOLS.contains(&protocol) {
            return Err(format!(
                "kafka.security.protocol: `{protocol}` is not one of {}",
                Self::PROTOCOLS.join(", ")
            ));
        }
        let sasl = protocol.starts_with("sasl_");
        match (&self.sasl_mechanism, sasl) {
            (None, true) => {
                return Err(format!(
                    "kafka.security.sasl_mechanism: required with protocol `{protocol}`"
                ));
            }
            (Some(_), false) => {
                return Err(format!(
                    "kafka.security.sasl_mechanism: set, but protocol `{protocol}` does not use SASL"
                ));
            }
            (Some(mechanism), true) if !Self::MECHANISMS.contains(&mechanism.as_str()) => {
                return Err(format!(
                    "kafka.security.sasl_mechanism: `{mechanism}` is not one of {}",
                    Self::MECHANISMS.join(", ")
                ));
            }
            _ => {}
        }
        if sasl {
            if self.sasl_username.is_none() {
                return Err("kafka.security.sasl_username: required with SASL".into());
            }
            let Some(variable) = &self.sasl_password_env else {
                return Err("kafka.security.sasl_password_env: required with SASL (the name of the variable holding the password)".into());
            };
            if env(variable).is_none() {
                return Err(format!(
                    "kafka.security.sasl_password_env: the variable {variable} is not set"
                ));
            }
        }
        if let Some(file) = &self.ca_file
            && !file.is_file()
        {
            return Err(format!(
                "kafka.security.ca_file: {} is not a readable file",
                file.display()
            ));
        }
        Ok(())
    }

    /// The librdkafka properties these settings stand for.
    fn properties(&self, env: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
        let mut properties = Vec::new();
        if let Some(protocol) = &self.protocol {
            properties.push(("security.protocol", protocol.clone()));
        }
        if let Some(file) = &self.ca_file {
            properties.push(("ssl.ca.location", file.display().to_string()));
        }
        if let Some(mechanism) = &self.sasl_mechanism {
            properties.push(("sasl.mechanisms", mechanism.clone()));
        }
        if let Some(username) = &self.sasl_username {
            properties.push(("sasl.username", username.clone()));
        }
        if let Some(password) = self.sasl_password_env.as_deref().and_then(env) {
            properties.push(("sasl.password", password));
        }
        properties
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: None,
            topic_prefix: "goldthread".into(),
            group_id: "goldthread".into(),
            partitions: 3,
            replication_factor: 1,
            embedded_brokers: 1,
            security: KafkaSecurity::default(),
            properties: BTreeMap::new(),
            compacted: vec![
                crate::EntityKind::Person,
                crate::EntityKind::Property,
                crate::EntityKind::Tenancy,
                crate::EntityKind::Vulnerability,
            ],
        }
    }
}

impl KafkaConfig {
    /// The topic of one source system's events about one entity.
    pub fn topic(&self, system: &str, entity: crate::EntityKind) -> String {
        format!("{}.{system}.{entity}", self.topic_prefix)
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}.deadletter", self.topic_prefix)
    }

    fn client_config(&self, bootstrap: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        for (key, value) in self.security.properties(|name| std::env::var(name).ok()) {
            config.set(key, value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// A stage's consumer: reports its lag per partition from librdkafka's statistics.
pub type StageConsumer = StreamConsumer<LagContext>;

/// Sets `stage_consumer_lag` (messages between the group's position and the partition's
/// end) from the statistics librdkafka emits every second.
#[derive(Debug)]
pub struct LagContext {
    group: String,
}

impl rdkafka::ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, detail) in statistics.topics {
            for (partition, partition_detail) in detail.partitions {
                // -1 is librdkafka's "unknown" (and the internal UA partition).
                if partition >= 0 && partition_detail.consumer_lag >= 0 {
                    metrics::gauge!(crate::metrics::STAGE_CONSUMER_LAG, "group" => self.group.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(partition_detail.consumer_lag as f64);
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {}

/// Asks the cluster for its metadata within `timeout`. On failure the error names what
/// librdkafka last reported about the connection (a refused certificate, a failed login, a
/// refused connection): a timed-out request alone would not. Blocking.
fn probe(mut config: ClientConfig, timeout: Duration) -> Result<()> {
    let bootstrap = config
        .get("bootstrap.servers")
        .unwrap_or_default()
        .to_string();
    let client: rdkafka::producer::BaseProducer<ConnectContext> = config
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning)
        .create_with_context(ConnectContext::default())
        .map_err(|error| Error::kafka("creating metadata client", error))?;
    let Err(error) = client.client().fetch_metadata(None, timeout) else {
        return Ok(());
    };
    // The connection's logs and errors wait on the main queue, which polling serves.
    client.poll(Duration::from_millis(100));
    let reason = client
        .context()
        .last_error()
        .map(|reason| format!("; the connection reported: {reason}"))
        .unwrap_or_default();
    Err(Error::kafka(
        format!("no answer from {bootstrap} within {timeout:?}{reason}"),
        error,
    ))
}

/// A metadata client's context: remembers the last error librdkafka reported about the
/// client's connections.
#[derive(Debug, Default)]
struct ConnectContext {
    last_error: std::sync::Mutex<Option<String>>,
}

impl ConnectContext {
    fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("last error lock").clone()
    }

    fn remember(&self, reason: &str) {
        *self.last_error.lock().expect("last error lock") = Some(reason.to_string());
    }
}

impl rdkafka::ClientContext for ConnectContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as Level;
        if matches!(
            level,
            Level::Emerg | Level::Alert | Level::Critical | Level::Error | Level::Warning
        ) {
            tracing::debug!(facility, message, "kafka connection");
            self.remember(message);
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka connection");
        // "All brokers are down" sums up the failures; keep the failure itself.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            self.remember(reason);
        }
    }
}

impl rdkafka::producer::ProducerContext for ConnectContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// A connected cluster: the bootstrap address, and the embedded broker if we run one.
#[derive(Debug)]
pub struct Cluster {
    pub config: KafkaConfig,
    pub bootstrap_servers: String,
    embedded: Option<EmbeddedBroker>,
}

impl Cluster {
    /// Connects to the configured cluster (or starts the embedded one) and makes sure every
    /// topic in `topics` exists.
    pub async fn connect(config: &KafkaConfig, topics: &[String]) -> Result<Cluster> {
        let (bootstrap_servers, embedded) = match &config.bootstrap_servers {
            Some(servers) => (servers.clone(), None),
            None => {
                let broker =
                    EmbeddedBroker::start(config.embedded_brokers, topics, config.partitions)?;
                (broker.bootstrap_servers.clone(), Some(broker))
            }
        };
        let cluster = Cluster {
            config: config.clone(),
            bootstrap_servers,
            embedded,
        };
        if cluster.embedded.is_none() {
            // A broker that does not answer is named with the reason its connection gave
            // (a refused certificate or login), not as a timed-out topic creation.
            let client = cluster.client_config();
            tokio::task::spawn_blocking(move || probe(client, Duration::from_secs(15)))
                .await
                .map_err(|error| Error::Task("the broker probe", error.to_string()))??;
            cluster.create_topics(topics).await?;
        }
        Ok(cluster)
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    pub fn client_config(&self) -> ClientConfig {
        self.config.client_config(&self.bootstrap_servers)
    }

    async fn create_topics(&self, topics: &[String]) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .map_err(|error| Error::kafka("creating admin client", error))?;
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|topic| {
                let new = NewTopic::new(
                    topic,
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication_factor),
                );
                let entity = topic.rsplit('.').next().and_then(crate::EntityKind::parse);
                if entity.is_some_and(|entity| self.config.compacted.contains(&entity)) {
                    new.set("cleanup.policy", "compact")
                } else if *topic == self.config.dead_letter_topic() {
                    // Kept for the retention period, and an erasure's tombstones (keyed by
                    // the record) remove a person's dead letters before that.
                    new.set("cleanup.policy", "compact,delete")
                } else {
                    new
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|error| Error::kafka("creating topics", error))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::kafka(
                        format!("creating topic {topic}"),
                        rdkafka::error::KafkaError::AdminOp(code),
                    ));
                }
            }
        }
        Ok(())
    }

    /// An idempotent producer: retries never duplicate a message within a partition.
    pub fn producer(&self) -> Result<EventProducer> {
        let producer: FutureProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .create()
            .map_err(|error| Error::kafka("creating producer", error))?;
        Ok(EventProducer {
            producer,
            dead_letter_topic: self.config.dead_letter_topic(),
            in_flight: VecDeque::new(),
        })
    }

    /// A consumer in the stages' group. Offsets are committed by the stage, only after its
    /// output is written (`enable.auto.commit=false`); a new group starts from the earliest.
    ///
    /// On the embedded broker the process is the group's only possible member: the consumer
    /// assigns itself every partition of the topics that exist, at the group's committed
    /// offsets, instead of joining (a join waits out the broker's initial rebalance delay,
    /// 3 s, before the first fetch).
    ///
    /// A fetch waits at most 100 ms for data unless `kafka.properties` says otherwise
    /// (librdkafka's default is 500 ms; some brokers, tansu among them, hold every fetch
    /// that long even when data arrives meanwhile).
    pub fn consumer(&self, group: &str, topics: &[String]) -> Result<StageConsumer> {
        let mut config = self.client_config();
        if !self.config.properties.contains_key("fetch.wait.max.ms") {
            config.set("fetch.wait.max.ms", "100");
        }
        let consumer: StageConsumer = config
            .set("group.id", group)
            .set("statistics.interval.ms", "1000")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create_with_context(LagContext {
                group: group.to_string(),
            })
            .map_err(|error| Error::kafka("creating consumer", error))?;
        let assignment = if self.is_embedded() {
            every_partition(&consumer, topics)?
        } else {
            None
        };
        if let Some(assignment) = assignment {
            consumer
                .assign(&assignment)
                .map_err(|error| Error::kafka("assigning partitions", error))?;
        } else {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&topics)
                .map_err(|error| Error::kafka("subscribing", error))?;
        }
        Ok(consumer)
    }

    /// Sets the stages' group offsets to `positions` (from the store, where they were written
    /// with what their events produced), so the group resumes where the durable state ends
    /// rather than where the last commit to Kafka happened to land. Call before consuming.
    pub fn commit_positions(&self, positions: &BTreeMap<(String, i32), i64>) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let consumer: rdkafka::consumer::BaseConsumer = self
            .client_config()
            .set("group.id", &self.config.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|error| Error::kafka("creating offset client", error))?;
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in positions {
            list.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|error| Error::kafka("building offsets", error))?;
        }
        rdkafka::consumer::Consumer::commit(&consumer, &list, rdkafka::consumer::CommitMode::Sync)
            .map_err(|error| Error::kafka("setting the group's offsets", error))
    }

    /// Whether the cluster answers a metadata request within `timeout` (for `/ready`).
    /// Blocking: call it off the async runtime.
    pub fn reachable(&self, timeout: Duration) -> Result<()> {
        probe(self.client_config(), timeout)
    }

    /// The high watermark of every partition of `topics`: the offsets a consumer must reach
    /// to have read everything produced so far.
    pub fn high_watermarks(&self, topics: &[String]) -> Result<BTreeMap<(String, i32), i64>> {
        let consumer: rdkafka::consumer::BaseConsumer = self
            .client_config()
            .create()
            .map_err(|error| Error::kafka("creating metadata client", error))?;
        let timeout = Duration::from_secs(30);
        let mut marks = BTreeMap::new();
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|error| Error::kafka(format!("metadata of {topic}"), error))?;
            for topic_metadata in metadata.topics() {
                for partition in topic_metadata.partitions() {
                    let (_, high) = consumer
                        .fetch_watermarks(topic, partition.id(), timeout)
                        .map_err(|error| Error::kafka(format!("watermarks of {topic}"), error))?;
                    marks.insert((topic.clone(), partition.id()), high);
                }
            }
        }
        Ok(marks)
    }
}

/// The group's committed offset of each partition of `topics` that has one (topics that do
/// not exist yet have none): where the consumer starts, so a stage whose group has already
/// read to a target knows it has reached it without consuming anything.
pub fn committed_positions(
    consumer: &StageConsumer,
    topics: &[String],
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|error| Error::kafka(format!("metadata of {topic}"), error))?;
        for found in metadata
            .topics()
            .iter()
            .filter(|found| found.error().is_none())
        {
            for partition in found.partitions() {
                partitions.add_partition(topic, partition.id());
            }
        }
    }
    if partitions.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(30))
        .map_err(|error| Error::kafka("the group's committed offsets", error))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => {
                Some(((element.topic().to_string(), element.partition()), offset))
            }
            _ => None,
        })
        .collect())
}

/// Every partition of `topics` at the group's committed offsets, or `None` when a topic does
/// not exist (yet): subscribing then picks it up once it does.
fn every_partition(
    consumer: &StageConsumer,
    topics: &[String],
) -> Result<Option<TopicPartitionList>> {
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|error| Error::kafka(format!("metadata of {topic}"), error))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|found| found.error().is_none())
            .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
            .collect();
        if partitions.is_empty() {
            return Ok(None);
        }
        for partition in partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Stored)
                .map_err(|error| Error::kafka("building the assignment", error))?;
        }
    }
    Ok(Some(assignment))
}

/// At most this many messages wait for delivery reports before `send` awaits the oldest.
const MAX_IN_FLIGHT: usize = 10_000;

/// Produces envelopes and dead letters, keeping a bounded number of deliveries in flight.
pub struct EventProducer {
    producer: FutureProducer,
    dead_letter_topic: String,
    in_flight: VecDeque<DeliveryFuture>,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl EventProducer {
    /// Sends one event to `topic`, keyed by its source reference.
    pub async fn send(&mut self, topic: &str, envelope: &Envelope) -> Result<()> {
        let payload = serde_json::to_vec(envelope)?;
        self.send_raw(topic, &envelope.key(), &payload).await
    }

    /// Sends a tombstone (the record's key, no payload): compaction then drops every earlier
    /// event of that record from the topic. The stage skips tombstones.
    pub async fn send_tombstone(
        &mut self,
        topic: &str,
        reference: &crate::Reference,
    ) -> Result<()> {
        let key = reference.key();
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(&key);
        let delivery = self
            .producer
            .send(record, Duration::from_secs(60))
            .await
            .map_err(|(error, _)| Error::kafka(format!("producing a tombstone to {topic}"), error));
        delivery.map(drop)
    }

    /// Sends one dead letter to the dead-letter topic, keyed by its source.
    /// Its raw row is cut to [`crate::MAX_DEAD_LETTER_RAW_BYTES`].
    pub async fn send_dead_letter(&mut self, dead_letter: &DeadLetter) -> Result<()> {
        let payload = serde_json::to_vec(&dead_letter.clone().clipped())?;
        let topic = self.dead_letter_topic.clone();
        let key = match &dead_letter.source_ref {
            Some(reference) => reference.key(),
            None => dead_letter.source.clone(),
        };
        self.send_raw(&topic, &key, &payload).await
    }

    /// Sends raw bytes to a topic: only for tests that need a message no connector would write.
    #[cfg(test)]
    pub(crate) async fn send_raw_for_test(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        self.send_raw(topic, "garbage", payload).await
    }

    async fn send_raw(&mut self, topic: &str, key: &str, payload: &[u8]) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.await_oldest().await?;
        }
        metrics::counter!(crate::metrics::KAFKA_BYTES_PRODUCED_TOTAL, "topic" => topic.to_string())
            .increment(payload.len() as u64);
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push_back(delivery);
                    return Ok(());
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    if self.in_flight.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    } else {
                        self.await_oldest().await?;
                    }
                }
                Err((error, _)) => {
                    return Err(Error::kafka(format!("producing to {topic}"), error));
                }
            }
        }
    }

    async fn await_oldest(&mut self) -> Result<()> {
        if let Some(delivery) = self.in_flight.pop_front() {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(Error::kafka("delivery", error)),
                Err(_) => {
                    return Err(Error::KafkaTimeout(
                        "producer dropped before delivery".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Waits until every message sent so far is acknowledged by the broker.
    pub async fn flush(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.await_oldest().await?;
        }
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|error| Error::kafka("flushing producer", error))
    }
}

/// librdkafka's in-process mock cluster, owned by a thread of its own (the handle is `!Send`).
/// Data lives in memory and is gone when this is dropped.
#[derive(Debug)]
pub struct EmbeddedBroker {
    pub bootstrap_servers: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    pub fn start(brokers: i32, topics: &[String], partitions: i32) -> Result<EmbeddedBroker> {
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let topics = topics.to_vec();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match rdkafka::mocking::MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                // librdkafka's mock thread can miss the wake-up of a request queued while it
                // reads the previous one's, and then sleeps out its 1 s poll: creating 11
                // topics took 3 s in some runs. A connection to the listener wakes it too, so
                // one is made every few milliseconds while the topics are created.
                let bootstrap_servers = cluster.bootstrap_servers();
                let created = std::sync::atomic::AtomicBool::new(false);
                let outcome = std::thread::scope(|scope| {
                    scope.spawn(|| {
                        let address = bootstrap_servers.split(',').next().unwrap_or_default();
                        while !created.load(std::sync::atomic::Ordering::Relaxed) {
                            let _ = std::net::TcpStream::connect(address);
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                    });
                    let outcome = topics.iter().try_for_each(|topic| {
                        cluster
                            .create_topic(topic, partitions, 1)
                            .map_err(|error| format!("creating topic {topic}: {error}"))
                    });
                    created.store(true, std::sync::atomic::Ordering::Relaxed);
                    outcome
                });
                if let Err(error) = outcome {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
                let _ = ready_tx.send(Ok(bootstrap_servers));
                // Keep the cluster alive until asked to stop (or the owner is gone).
                let _ = stop_rx.recv();
            })
            .map_err(|error| Error::Embedded(error.to_string()))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| Error::Embedded("broker thread exited".into()))?
            .map_err(Error::Embedded)?;
        tracing::info!(bootstrap_servers, "embedded kafka broker started");
        Ok(EmbeddedBroker {
            bootstrap_servers,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_built_in_and_security_settings_become_client_properties() {
        let security = KafkaSecurity {
            protocol: Some("sasl_ssl".into()),
            ca_file: None,
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("goldthread".into()),
            sasl_password_env: Some("KAFKA_PASSWORD".into()),
        };
        let env = |name: &str| (name == "KAFKA_PASSWORD").then(|| "s3cret".to_string());
        assert_eq!(security.validate(env), Ok(()));
        assert_eq!(
            security.properties(env),
            [
                ("security.protocol", "sasl_ssl".to_string()),
                ("sasl.mechanisms", "SCRAM-SHA-512".to_string()),
                ("sasl.username", "goldthread".to_string()),
                ("sasl.password", "s3cret".to_string()),
            ]
        );
        // librdkafka accepts TLS and SCRAM: it was built with OpenSSL.
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        for (key, value) in security.properties(env) {
            config.set(key, value);
        }
        let producer: std::result::Result<rdkafka::producer::BaseProducer, _> = config.create();
        assert!(producer.is_ok(), "{:?}", producer.err());

        let unset = |_: &str| None;
        assert!(
            security
                .validate(unset)
                .unwrap_err()
                .contains("KAFKA_PASSWORD is not set")
        );
        let plain = KafkaSecurity {
            protocol: Some("ssl".into()),
            sasl_mechanism: Some("PLAIN".into()),
            ..KafkaSecurity::default()
        };
        assert!(
            plain
                .validate(unset)
                .unwrap_err()
                .contains("does not use SASL")
        );
        let missing = KafkaSecurity {
            protocol: Some("ssl".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..KafkaSecurity::default()
        };
        assert!(
            missing
                .validate(unset)
                .unwrap_err()
                .contains("kafka.security.ca_file")
        );
        assert!(KafkaSecurity::default().validate(unset).is_ok());
    }

    use rdkafka::Message;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_broker_round_trips_and_reports_watermarks() {
        let config = KafkaConfig {
            topic_prefix: "test".into(),
            partitions: 2,
            ..KafkaConfig::default()
        };
        let topic = config.topic("hms", crate::EntityKind::Person);
        let cluster = Cluster::connect(&config, std::slice::from_ref(&topic))
            .await
            .unwrap();
        let mut producer = cluster.producer().unwrap();
        for n in 0..10 {
            producer
                .send_raw(&topic, &format!("k{n}"), b"{}")
                .await
                .unwrap();
        }
        producer.flush().await.unwrap();
        let marks = cluster
            .high_watermarks(std::slice::from_ref(&topic))
            .unwrap();
        assert_eq!(marks.len(), 2);
        assert_eq!(marks.values().sum::<i64>(), 10);

        let consumer = cluster
            .consumer(&config.group_id, std::slice::from_ref(&topic))
            .unwrap();
        let mut seen = 0;
        while seen < 10 {
            let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .expect("message within 30 s")
                .unwrap();
            assert_eq!(message.payload(), Some(&b"{}"[..]));
            seen += 1;
        }
    }

    /// A restart resumes at the positions the store holds, not at the group's last commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_group_resumes_at_positions_set_from_the_store() {
        let config = KafkaConfig {
            topic_prefix: "resume".into(),
            partitions: 1,
            ..KafkaConfig::default()
        };
        let topic = config.topic("hms", crate::EntityKind::Person);
        let cluster = Cluster::connect(&config, std::slice::from_ref(&topic))
            .await
            .unwrap();
        let mut producer = cluster.producer().unwrap();
        for n in 0..10 {
            producer
                .send_raw(&topic, "key", format!("{n}").as_bytes())
                .await
                .unwrap();
        }
        producer.flush().await.unwrap();
        cluster
            .commit_positions(&BTreeMap::from([((topic.clone(), 0), 7)]))
            .unwrap();
        let consumer = cluster
            .consumer(&config.group_id, std::slice::from_ref(&topic))
            .unwrap();
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("message within 30 s")
            .unwrap();
        assert_eq!(message.offset(), 7);
        assert_eq!(message.payload(), Some(&b"7"[..]));
    }
}
