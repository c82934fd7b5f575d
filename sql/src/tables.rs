//! The live tables: one Arrow table per entity the analytics read, appended in batches as
//! events arrive (every version: the history), the latest version of each record kept
//! beside it (`latest_*`), settings tables from `[analytics]`, and golden-record tables
//! replaced from the MDM stage's snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Array, Int64Builder, StringArray,
    StringBuilder, StringDictionaryBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use pipeline::{Envelope, Payload};

use crate::config::AnalyticsConfig;
use crate::error::Error;
use crate::kept::{Kept, KeptTable};

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The live tables and their columns. Every table has `ref` (the source record id, or the
/// subject's id for updates and visits), `source`, `seq` (arrival order: the latest row per
/// `ref` is the current state) and `changed_at` (when the source changed the record: when
/// it recorded this version (`recorded_at`, a CDC change's commit time), else the event's
/// business time (`occurred_at`: a work order's raised time), else when it was ingested).
fn schemas() -> BTreeMap<&'static str, SchemaRef> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    let instant = |name: &str| Field::new(name, timestamp(), true);
    let common = || {
        vec![
            Field::new("ref", DataType::Utf8, false),
            text("source"),
            Field::new("seq", DataType::Int64, false),
            instant("changed_at"),
        ]
    };
    let table = |fields: Vec<Field>| {
        let mut all = common();
        all.extend(fields);
        Arc::new(Schema::new(all))
    };
    BTreeMap::from([
        (
            "repair_requests",
            table(vec![
                text("property_ref"),
                instant("reported_at"),
                int("priority"),
                text("channel"),
                instant("due_at"),
            ]),
        ),
        (
            "work_orders",
            table(vec![
                text("repair_request_ref"),
                text("property_ref"),
                int("priority"),
                instant("raised_at"),
                text("contractor"),
                text("trade"),
                text("work_class"),
                text("parent_ref"),
                instant("due_at"),
            ]),
        ),
        (
            "work_order_updates",
            table(vec![
                text("status"),
                instant("status_at"),
                int("type_code"),
                text("follow_on_ref"),
            ]),
        ),
        (
            "appointments",
            table(vec![
                text("work_order_ref"),
                Field::new("slot_date", DataType::Date32, true),
                text("slot"),
                instant("window_start"),
                instant("window_end"),
                instant("booked_at"),
                Field::new("reminder_sent", DataType::Boolean, true),
            ]),
        ),
        (
            "visits",
            table(vec![
                text("work_order_ref"),
                text("outcome"),
                text("attribution"),
                instant("arrived_at"),
                int("contact_attempts"),
                Field::new("card_left", DataType::Boolean, true),
                Field::new("photo", DataType::Boolean, true),
            ]),
        ),
        (
            "properties",
            table(vec![text("uprn"), text("postcode"), text("property_type")]),
        ),
        (
            "tenancies",
            table(vec![
                text("property_ref"),
                Field::new("start_date", DataType::Date32, true),
                Field::new("end_date", DataType::Date32, true),
            ]),
        ),
        (
            "vulnerabilities",
            table(vec![
                Field::new("start_date", DataType::Date32, true),
                Field::new("end_date", DataType::Date32, true),
                Field::new("review_date", DataType::Date32, true),
            ]),
        ),
        (
            "golden_properties",
            Arc::new(Schema::new(vec![
                Field::new("golden_id", DataType::Utf8, false),
                text("uprn"),
                text("parent_golden_id"),
                text("postcode"),
                text("town"),
                text("property_type"),
                int("n_sources"),
            ])),
        ),
        (
            "golden_persons",
            // As BI sees them (`bi.golden_person`): a person's postcode district only.
            Arc::new(Schema::new(vec![
                Field::new("golden_id", DataType::Utf8, false),
                text("postcode_district"),
                int("n_sources"),
            ])),
        ),
    ])
}

/// Column builders for one batch of one table.
enum Column {
    Text(StringBuilder),
    /// Text with few distinct values, dictionary-encoded.
    Dictionary(StringDictionaryBuilder<Int32Type>),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Instant(TimestampMicrosecondBuilder),
}

/// A value for one cell.
pub(crate) enum Cell<'a> {
    /// For a text or a dictionary column.
    Text(Option<&'a str>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Date(Option<NaiveDate>),
    Instant(Option<DateTime<Utc>>),
}

/// Builds one batch of a table row by row.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
}

impl BatchBuilder {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::Utf8 => Column::Text(StringBuilder::new()),
                DataType::Dictionary(..) => Column::Dictionary(StringDictionaryBuilder::new()),
                DataType::Int64 => Column::Int(Int64Builder::new()),
                DataType::Float64 => Column::Float(Float64Builder::new()),
                DataType::Boolean => Column::Bool(BooleanBuilder::new()),
                DataType::Date32 => Column::Date(Date32Builder::new()),
                _ => Column::Instant(TimestampMicrosecondBuilder::new()),
            })
            .collect();
        BatchBuilder { schema, columns }
    }

    /// Appends one row; `cells` follow the schema's column order.
    pub(crate) fn push(&mut self, cells: &[Cell<'_>]) {
        debug_assert_eq!(cells.len(), self.columns.len());
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            match (column, cell) {
                (Column::Text(builder), Cell::Text(value)) => builder.append_option(*value),
                (Column::Dictionary(builder), Cell::Text(value)) => builder.append_option(*value),
                (Column::Int(builder), Cell::Int(value)) => builder.append_option(*value),
                (Column::Float(builder), Cell::Float(value)) => builder.append_option(*value),
                (Column::Bool(builder), Cell::Bool(value)) => builder.append_option(*value),
                (Column::Date(builder), Cell::Date(value)) => {
                    builder.append_option(value.map(|date| (date - epoch).num_days() as i32));
                }
                (Column::Instant(builder), Cell::Instant(value)) => {
                    builder.append_option(value.map(|instant| instant.timestamp_micros()));
                }
                _ => unreachable!("cells follow the schema"),
            }
        }
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch, Error> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|column| -> ArrayRef {
                match column {
                    Column::Text(builder) => Arc::new(builder.finish()),
                    Column::Dictionary(builder) => Arc::new(builder.finish()),
                    Column::Int(builder) => Arc::new(builder.finish()),
                    Column::Float(builder) => Arc::new(builder.finish()),
                    Column::Bool(builder) => Arc::new(builder.finish()),
                    Column::Date(builder) => Arc::new(builder.finish()),
                    Column::Instant(builder) => Arc::new(builder.finish()),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(self.schema, arrays)?)
    }
}

/// A registered table: the session scans `provider`, whose one partition the stage appends
/// to (so views over it see new rows without being created again).
#[derive(Debug)]
struct Table {
    provider: Arc<MemTable>,
    rows: usize,
    /// For the tables with a `latest_<name>` view: that view kept up to date.
    latest: Option<Latest>,
}

/// The latest version of each record of a live table, kept as events arrive: per appended
/// batch, the same batch without the rows a later version replaced. It is registered as
/// `latest_<table>` and holds what the view of that name in `sql/views/current.sql` defines
/// (the latest `seq` per key), which other engines compute from the history instead.
#[derive(Debug)]
struct Latest {
    provider: Arc<MemTable>,
    /// Whether the key is (`source`, `ref`) rather than `ref`.
    by_source: bool,
    /// Where each key's latest version is: (history batch, row).
    index: std::collections::HashMap<String, (usize, usize)>,
    /// Per history batch, its rows that a later version replaced.
    replaced: Vec<Vec<usize>>,
}

/// The tables with a `latest_` view, and whether their key includes the source.
const LATEST: &[(&str, bool)] = &[
    ("repair_requests", false),
    ("work_orders", false),
    ("appointments", false),
    ("visits", false),
    ("properties", false),
    ("tenancies", true),
    ("vulnerabilities", true),
];

/// Whether a statement of `sql/views/current.sql` defines a view that goldthread keeps as
/// a table instead (the `latest_` tables, `sql::kept`'s tables).
pub(crate) fn is_kept(statement: &str) -> bool {
    statement.contains("CREATE VIEW latest_")
        || crate::kept::Table::ALL
            .iter()
            .any(|table| statement.contains(&format!("CREATE VIEW {} AS", table.name())))
}

fn write_partition(provider: &MemTable) -> tokio::sync::RwLockWriteGuard<'_, Vec<RecordBatch>> {
    // A query copies the list under the same lock for a moment when it starts.
    loop {
        match provider.batches[0].try_write() {
            Ok(batches) => break batches,
            Err(_) => std::thread::yield_now(),
        }
    }
}

impl Latest {
    /// Takes in the history's next batch (index `at`): rows it replaces leave their batches.
    fn push(
        &mut self,
        at: usize,
        batch: &RecordBatch,
        history: &[RecordBatch],
    ) -> Result<(), Error> {
        use datafusion::arrow::array::AsArray;
        let refs = batch.column(0).as_string::<i32>();
        let sources = batch.column(1).as_string::<i32>();
        self.replaced.push(Vec::new());
        let mut touched = std::collections::BTreeSet::new();
        for row in 0..batch.num_rows() {
            let key = if self.by_source {
                format!("{}\u{0}{}", sources.value(row), refs.value(row))
            } else {
                refs.value(row).to_string()
            };
            if let Some((old_batch, old_row)) = self.index.insert(key, (at, row)) {
                self.replaced[old_batch].push(old_row);
                touched.insert(old_batch);
            }
        }
        let keep = |index: usize, batch: &RecordBatch| -> Result<RecordBatch, Error> {
            let replaced = &self.replaced[index];
            if replaced.is_empty() {
                return Ok(batch.clone());
            }
            let mut mask = vec![true; batch.num_rows()];
            for row in replaced {
                mask[*row] = false;
            }
            let mask = datafusion::arrow::array::BooleanArray::from(mask);
            Ok(datafusion::arrow::compute::filter_record_batch(
                batch, &mask,
            )?)
        };
        let mut rebuilt = Vec::new();
        for index in touched.into_iter().filter(|index| *index < at) {
            rebuilt.push((index, keep(index, &history[index])?));
        }
        let newest = keep(at, batch)?;
        let mut batches = write_partition(&self.provider);
        for (index, kept) in rebuilt {
            batches[index] = kept;
        }
        batches.push(newest);
        Ok(())
    }
}

impl Table {
    fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Table, Error> {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        Ok(Table {
            provider: Arc::new(MemTable::try_new(schema, vec![batches])?),
            rows,
            latest: None,
        })
    }

    /// A live table that also keeps its `latest_` table.
    fn with_latest(schema: SchemaRef, by_source: bool) -> Result<Table, Error> {
        let mut table = Table::new(schema.clone(), Vec::new())?;
        table.latest = Some(Latest {
            provider: Arc::new(MemTable::try_new(schema, vec![Vec::new()])?),
            by_source,
            index: Default::default(),
            replaced: Vec::new(),
        });
        Ok(table)
    }

    /// Appends a batch to the history and to the latest versions.
    fn append(&mut self, batch: RecordBatch) -> Result<(), Error> {
        let mut history = write_partition(&self.provider);
        if let Some(latest) = &mut self.latest {
            latest.push(history.len(), &batch, &history)?;
        }
        self.rows += batch.num_rows();
        history.push(batch);
        Ok(())
    }

    fn schema(&self) -> SchemaRef {
        datafusion::catalog::TableProvider::schema(self.provider.as_ref())
    }

    /// Removes the rows `gone(source, ref)` picks from the history and the latest versions;
    /// returns how many history rows went. The new contents are built aside and swapped in.
    fn forget(&mut self, gone: impl Fn(&str, &str) -> bool) -> Result<usize, Error> {
        use datafusion::arrow::array::AsArray;
        let history = write_partition(&self.provider).clone();
        let mut fresh = match &self.latest {
            Some(latest) => Table::with_latest(self.schema(), latest.by_source)?,
            None => Table::new(self.schema(), Vec::new())?,
        };
        let mut removed = 0;
        for batch in history {
            let (refs, sources) = (
                batch.column(0).as_string::<i32>(),
                batch.column(1).as_string::<i32>(),
            );
            let keep: datafusion::arrow::array::BooleanArray = (0..batch.num_rows())
                .map(|row| Some(!gone(sources.value(row), refs.value(row))))
                .collect();
            let kept = datafusion::arrow::compute::filter_record_batch(&batch, &keep)?;
            removed += batch.num_rows() - kept.num_rows();
            fresh.append(kept)?;
        }
        *write_partition(&self.provider) = write_partition(&fresh.provider).clone();
        if let (Some(latest), Some(fresh_latest)) = (&mut self.latest, fresh.latest) {
            *write_partition(&latest.provider) = write_partition(&fresh_latest.provider).clone();
            latest.index = fresh_latest.index;
            latest.replaced = fresh_latest.replaced;
        }
        self.rows = fresh.rows;
        Ok(removed)
    }

    /// Replaces the table's batches (golden-record tables).
    fn replace(&mut self, replacement: Vec<RecordBatch>) {
        let mut batches = write_partition(&self.provider);
        self.rows = replacement.iter().map(RecordBatch::num_rows).sum();
        *batches = replacement;
    }
}

fn builder_for<'b>(
    builders: &'b mut BTreeMap<&'static str, BatchBuilder>,
    schemas: &BTreeMap<&'static str, SchemaRef>,
    name: &'static str,
) -> &'b mut BatchBuilder {
    builders
        .entry(name)
        .or_insert_with(|| BatchBuilder::new(schemas[name].clone()))
}

fn text(value: &Option<String>) -> Cell<'_> {
    Cell::Text(value.as_deref())
}

/// A golden property as the analytics tables hold it.
#[derive(Debug, Clone, Default)]
pub struct GoldenPropertyRow<'a> {
    pub golden_id: &'a str,
    pub uprn: Option<&'a str>,
    pub parent_golden_id: Option<&'a str>,
    pub postcode: Option<&'a str>,
    pub town: Option<&'a str>,
    pub property_type: Option<&'a str>,
    /// Source records in the golden record.
    pub sources: usize,
}

/// A golden person as given to the analytics, which keep the postcode's district only.
#[derive(Debug, Clone, Default)]
pub struct GoldenPersonRow<'a> {
    pub golden_id: &'a str,
    pub postcode: Option<&'a str>,
    /// Source records in the golden record.
    pub sources: usize,
}

fn sources_column(sources: impl Iterator<Item = usize>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(sources.map(|n| n as i64)))
}

/// The analytics stage: live tables in a DataFusion session.
pub struct Analytics {
    pub(crate) context: SessionContext,
    pub(crate) config: AnalyticsConfig,
    targets: BTreeMap<i64, crate::config::Target>,
    calendar: crate::calendar::Calendar,
    tables: Mutex<BTreeMap<&'static str, Table>>,
    sequence: Mutex<i64>,
    /// The KPIs' per-day counts, kept as events arrive (`sql::kept`).
    kept: Arc<Kept>,
    /// The threads and bounded session of analysts' queries.
    pub(crate) analysts: crate::query::Analysts,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("rows", &self.row_counts())
            .finish_non_exhaustive()
    }
}

impl Analytics {
    /// A session with every live table registered (empty), plus the settings tables the
    /// queries join: `repair_targets` (per priority: the target, whether RP02 counts it as
    /// emergency, whether Awaab's Law counts it as an emergency hazard), `hazard_trades`
    /// and `calendar` (every day of 2000-2050 with its running count of working days).
    pub async fn new(config: AnalyticsConfig) -> Result<Analytics, Error> {
        use datafusion::arrow::array::{BooleanArray, Date32Array, Int64Array, StringArray};
        let context = SessionContext::new();
        let targets = config.targets()?;
        let calendar = config.calendar();
        // Awaab's Law hazards: the priorities with a target that it counts as emergencies,
        // and the significant hazards' trades, each once.
        let awaab_emergency: BTreeSet<i64> = targets
            .keys()
            .filter(|code| config.awaab.emergency_priorities.contains(code))
            .copied()
            .collect();
        let hazard_trades: BTreeSet<String> = config
            .awaab
            .significant_hazard_trades
            .iter()
            .cloned()
            .collect();
        let settings: Vec<(&str, Vec<(&str, ArrayRef)>)> = vec![
            (
                "repair_targets",
                vec![
                    (
                        "priority",
                        Arc::new(Int64Array::from_iter_values(targets.keys().copied())),
                    ),
                    (
                        "target",
                        Arc::new(StringArray::from_iter_values(
                            targets.values().map(|target| target.describe()),
                        )),
                    ),
                    (
                        "emergency",
                        Arc::new(BooleanArray::from_iter(
                            targets
                                .keys()
                                .map(|code| Some(config.emergency_priorities.contains(code))),
                        )),
                    ),
                    (
                        "awaab_emergency",
                        Arc::new(BooleanArray::from_iter(
                            targets
                                .keys()
                                .map(|code| Some(awaab_emergency.contains(code))),
                        )),
                    ),
                ],
            ),
            (
                "hazard_trades",
                vec![(
                    "trade",
                    Arc::new(StringArray::from_iter_values(hazard_trades.iter())),
                )],
            ),
            {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                let days = calendar.days(
                    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date"),
                    NaiveDate::from_ymd_opt(2050, 12, 31).expect("valid date"),
                );
                (
                    "calendar",
                    vec![
                        (
                            "day",
                            Arc::new(Date32Array::from_iter_values(
                                days.iter()
                                    .map(|(day, _, _)| (*day - epoch).num_days() as i32),
                            )),
                        ),
                        (
                            "working_day",
                            Arc::new(BooleanArray::from_iter(
                                days.iter().map(|(_, working, _)| Some(*working)),
                            )),
                        ),
                        (
                            "working_day_number",
                            Arc::new(Int64Array::from_iter_values(
                                days.iter().map(|(_, _, number)| *number),
                            )),
                        ),
                    ],
                )
            },
        ];
        let mut tables = BTreeMap::new();
        for (name, columns) in settings {
            let batch = RecordBatch::try_from_iter(columns)?;
            tables.insert(name, Table::new(batch.schema(), vec![batch])?);
        }
        for (name, schema) in schemas() {
            let table = match LATEST.iter().find(|(table, _)| *table == name) {
                Some((_, by_source)) => Table::with_latest(schema, *by_source)?,
                None => Table::new(schema, Vec::new())?,
            };
            tables.insert(name, table);
        }
        let kept = Arc::new(Kept::new(awaab_emergency, hazard_trades));
        for table in crate::kept::Table::ALL {
            let provider = KeptTable {
                kept: kept.clone(),
                table,
            };
            context.register_table(table.name(), Arc::new(provider))?;
        }
        for (name, table) in &tables {
            context.register_table(*name, table.provider.clone())?;
            if let Some(latest) = &table.latest {
                context.register_table(format!("latest_{name}"), latest.provider.clone())?;
            }
        }
        for statement in crate::kpi::VIEWS.split(';') {
            let code = statement
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with("--"));
            // The views goldthread keeps as tables are registered above.
            if code && !is_kept(statement) {
                context.sql(statement).await?;
            }
        }
        let analysts = crate::query::Analysts::start(&context, &config)?;
        Ok(Analytics {
            analysts,
            context,
            config,
            targets,
            calendar,
            tables: Mutex::new(tables),
            sequence: Mutex::new(0),
            kept,
        })
    }

    /// When a repair reported at `at` with `priority` is due, if the priority has a target.
    fn due(&self, priority: Option<i64>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let target = self.targets.get(&priority?)?;
        target.due(at, &self.calendar)
    }

    /// Appends the repairs events among `envelopes` to their tables, one batch per table.
    /// Returns how many events were appended (master data events are not this stage's).
    pub fn append(&self, envelopes: &[Envelope]) -> Result<usize, Error> {
        let schemas = schemas();
        let mut builders: BTreeMap<&'static str, BatchBuilder> = BTreeMap::new();
        let mut sequence = self.sequence.lock().expect("sequence lock");
        let mut appended = 0;
        for envelope in envelopes {
            let id = Cell::Text(Some(envelope.source_ref.id.as_str()));
            let source = Cell::Text(Some(envelope.source.system.as_str()));
            let seq = Cell::Int(Some(*sequence + 1));
            let changed = Cell::Instant(Some(
                envelope
                    .recorded_at
                    .or(envelope.occurred_at)
                    .unwrap_or(envelope.ingested_at),
            ));
            match &envelope.payload {
                Payload::RepairRequest(request) => {
                    builder_for(&mut builders, &schemas, "repair_requests").push(&[
                        id,
                        source,
                        seq,
                        changed,
                        Cell::Text(Some(&request.property_ref)),
                        Cell::Instant(Some(request.reported_at)),
                        Cell::Int(request.priority),
                        text(&request.channel),
                        Cell::Instant(self.due(request.priority, request.reported_at)),
                    ])
                }
                Payload::WorkOrder(order) => builder_for(&mut builders, &schemas, "work_orders")
                    .push(&[
                        id,
                        source,
                        seq,
                        changed,
                        text(&order.repair_request_ref),
                        Cell::Text(Some(&order.property_ref)),
                        Cell::Int(Some(order.priority)),
                        Cell::Instant(Some(order.raised_at)),
                        text(&order.contractor),
                        text(&order.trade),
                        text(&order.work_class),
                        text(&order.parent_ref),
                        Cell::Instant(self.due(Some(order.priority), order.raised_at)),
                    ]),
                Payload::WorkOrderUpdate(update) => {
                    builder_for(&mut builders, &schemas, "work_order_updates").push(&[
                        Cell::Text(Some(&update.work_order_ref)),
                        source,
                        seq,
                        changed,
                        Cell::Text(Some(&update.status)),
                        Cell::Instant(Some(update.status_at)),
                        Cell::Int(update.type_code),
                        text(&update.follow_on_ref),
                    ])
                }
                Payload::Appointment(appointment) => {
                    builder_for(&mut builders, &schemas, "appointments").push(&[
                        id,
                        source,
                        seq,
                        changed,
                        Cell::Text(Some(&appointment.work_order_ref)),
                        Cell::Date(Some(appointment.slot_date)),
                        text(&appointment.slot),
                        Cell::Instant(appointment.window_start),
                        Cell::Instant(appointment.window_end),
                        Cell::Instant(appointment.booked_at),
                        Cell::Bool(appointment.reminder_sent),
                    ])
                }
                Payload::Visit(visit) => builder_for(&mut builders, &schemas, "visits").push(&[
                    Cell::Text(Some(&visit.appointment_ref)),
                    source,
                    seq,
                    changed,
                    text(&visit.work_order_ref),
                    Cell::Text(Some(&visit.outcome)),
                    text(&visit.attribution),
                    Cell::Instant(visit.arrived_at),
                    Cell::Int(visit.contact_attempts),
                    Cell::Bool(visit.card_left),
                    Cell::Bool(visit.photo),
                ]),
                Payload::Property(property) => builder_for(&mut builders, &schemas, "properties")
                    .push(&[
                        id,
                        source,
                        seq,
                        changed,
                        text(&property.uprn),
                        text(&property.postcode),
                        text(&property.property_type),
                    ]),
                Payload::Tenancy(tenancy) => builder_for(&mut builders, &schemas, "tenancies")
                    .push(&[
                        id,
                        source,
                        seq,
                        changed,
                        Cell::Text(Some(&tenancy.property_ref)),
                        Cell::Date(tenancy.start_date),
                        Cell::Date(tenancy.end_date),
                    ]),
                // Dates only: who it is about and what it is are special category data, not
                // for analysts.
                Payload::Vulnerability(vulnerability) => {
                    builder_for(&mut builders, &schemas, "vulnerabilities").push(&[
                        id,
                        source,
                        seq,
                        changed,
                        Cell::Date(vulnerability.start_date),
                        Cell::Date(vulnerability.end_date),
                        Cell::Date(vulnerability.review_date),
                    ])
                }
                Payload::Person(_) => continue,
            }
            *sequence += 1;
            appended += 1;
        }
        drop(sequence);
        let mut tables = self.tables.lock().expect("tables lock");
        for (name, builder) in builders {
            let batch = builder.finish()?;
            let table = tables.get_mut(name).expect("every table is registered");
            table.append(batch)?;
        }
        self.kept
            .apply(envelopes, &|priority, at| self.due(priority, at));
        Ok(appended)
    }

    /// Removes an erased person's vulnerability records from the history and the latest
    /// versions. Returns how many rows went.
    pub fn forget_vulnerabilities(&self, records: &[pipeline::Reference]) -> Result<usize, Error> {
        let gone: std::collections::HashSet<(&str, &str)> = records
            .iter()
            .map(|record| (record.allocated_by.as_str(), record.id.as_str()))
            .collect();
        let mut tables = self.tables.lock().expect("tables lock");
        let table = tables
            .get_mut("vulnerabilities")
            .expect("every table is registered");
        table.forget(|source, id| gone.contains(&(source, id)))
    }

    /// Every table's name, schema and batches as they are now.
    pub(crate) fn snapshot(&self) -> Vec<(&'static str, SchemaRef, Vec<RecordBatch>)> {
        let tables = self.tables.lock().expect("tables lock");
        tables
            .iter()
            .map(|(name, table)| {
                let batches = loop {
                    match table.provider.batches[0].try_read() {
                        Ok(batches) => break batches.clone(),
                        Err(_) => std::thread::yield_now(),
                    }
                };
                (*name, table.schema(), batches)
            })
            .collect()
    }

    /// Replaces the golden properties.
    pub fn replace_golden_properties<'a>(
        &self,
        rows: &[GoldenPropertyRow<'a>],
    ) -> Result<(), Error> {
        let text = |values: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let column = |field: fn(&GoldenPropertyRow<'a>) -> Option<&'a str>| {
            text(rows.iter().map(field).collect())
        };
        self.replace_golden(
            "golden_properties",
            vec![
                text(rows.iter().map(|row| Some(row.golden_id)).collect()),
                column(|row| row.uprn),
                column(|row| row.parent_golden_id),
                column(|row| row.postcode),
                column(|row| row.town),
                column(|row| row.property_type),
                sources_column(rows.iter().map(|row| row.sources)),
            ],
        )
    }

    /// Replaces the golden persons: their postcode district only (as `bi.golden_person`).
    pub fn replace_golden_persons(&self, rows: &[GoldenPersonRow]) -> Result<(), Error> {
        let districts: Vec<Option<&str>> = rows
            .iter()
            .map(|row| row.postcode.and_then(|postcode| postcode.split(' ').next()))
            .collect();
        self.replace_golden(
            "golden_persons",
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.golden_id),
                )),
                Arc::new(StringArray::from(districts)),
                sources_column(rows.iter().map(|row| row.sources)),
            ],
        )
    }

    fn replace_golden(&self, name: &'static str, columns: Vec<ArrayRef>) -> Result<(), Error> {
        let mut tables = self.tables.lock().expect("tables lock");
        let table = tables.get_mut(name).expect("a golden table");
        let batch = RecordBatch::try_new(table.schema(), columns)?;
        table.replace(vec![batch]);
        Ok(())
    }

    /// Rows held per table that goldthread keeps for the KPI files (`sql::kept`).
    pub fn kept_rows(&self) -> Vec<(&'static str, usize)> {
        self.kept.rows()
    }

    /// Rows held per table.
    pub fn row_counts(&self) -> BTreeMap<&'static str, usize> {
        let live = schemas();
        self.tables
            .lock()
            .expect("tables lock")
            .iter()
            .filter(|(name, _)| live.contains_key(*name))
            .map(|(name, table)| (*name, table.rows))
            .collect()
    }

    /// The default KPI period: from the first appointment slot to the last day with recorded
    /// activity (a visit or a work order update), so slots booked beyond the data are left out.
    pub async fn data_span(&self) -> Result<Option<(NaiveDate, NaiveDate)>, Error> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::Date32Type;
        let batches = self
            .query(
                "SELECT (SELECT MIN(slot_date) FROM appointments), \
                 LEAST((SELECT MAX(slot_date) FROM appointments), \
                       (SELECT CAST(MAX(status_at) AS DATE) FROM work_order_updates))",
            )
            .await?;
        let Some(batch) = batches.first().filter(|batch| batch.num_rows() == 1) else {
            return Ok(None);
        };
        let (first, last) = (
            batch.column(0).as_primitive::<Date32Type>(),
            batch.column(1).as_primitive::<Date32Type>(),
        );
        if first.is_null(0) || last.is_null(0) {
            return Ok(None);
        }
        Ok(first.value_as_date(0).zip(last.value_as_date(0)))
    }

    /// Runs a query over the live tables (for tests and the analyst endpoint).
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, Error> {
        Ok(self.context.sql(sql).await?.collect().await?)
    }
}
