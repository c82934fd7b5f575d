//! The live tables: one Arrow table per repairs entity, appended in batches as events arrive,
//! plus golden-record tables replaced from the MDM stage's snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use pipeline::{Envelope, Payload};

use crate::config::AnalyticsConfig;
use crate::error::Error;

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The live tables and their columns. Every table has `ref` (the source record id, or the
/// subject's id for updates and visits), `source` and `seq` (arrival order: the latest row
/// per `ref` is the current state).
fn schemas() -> BTreeMap<&'static str, SchemaRef> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    let instant = |name: &str| Field::new(name, timestamp(), true);
    let common = || {
        vec![
            Field::new("ref", DataType::Utf8, false),
            text("source"),
            Field::new("seq", DataType::Int64, false),
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
            Arc::new(Schema::new(vec![
                Field::new("golden_id", DataType::Utf8, false),
                text("postcode"),
                int("n_sources"),
            ])),
        ),
    ])
}

/// Column builders for one batch of one table.
enum Column {
    Text(StringBuilder),
    Int(Int64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Instant(TimestampMicrosecondBuilder),
}

/// A value for one cell.
pub(crate) enum Cell<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Date(Option<NaiveDate>),
    Instant(Option<DateTime<Utc>>),
}

struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
}

impl BatchBuilder {
    fn new(schema: SchemaRef) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::Utf8 => Column::Text(StringBuilder::new()),
                DataType::Int64 => Column::Int(Int64Builder::new()),
                DataType::Boolean => Column::Bool(BooleanBuilder::new()),
                DataType::Date32 => Column::Date(Date32Builder::new()),
                _ => Column::Instant(TimestampMicrosecondBuilder::new()),
            })
            .collect();
        BatchBuilder { schema, columns }
    }

    /// Appends one row; `cells` follow the schema's column order.
    fn push(&mut self, cells: &[Cell<'_>]) {
        debug_assert_eq!(cells.len(), self.columns.len());
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            match (column, cell) {
                (Column::Text(builder), Cell::Text(value)) => builder.append_option(*value),
                (Column::Int(builder), Cell::Int(value)) => builder.append_option(*value),
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

    fn finish(mut self) -> Result<RecordBatch, Error> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|column| -> ArrayRef {
                match column {
                    Column::Text(builder) => Arc::new(builder.finish()),
                    Column::Int(builder) => Arc::new(builder.finish()),
                    Column::Bool(builder) => Arc::new(builder.finish()),
                    Column::Date(builder) => Arc::new(builder.finish()),
                    Column::Instant(builder) => Arc::new(builder.finish()),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(self.schema, arrays)?)
    }
}

#[derive(Debug)]
struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    rows: usize,
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

/// The analytics stage: live tables in a DataFusion session.
pub struct Analytics {
    pub(crate) context: SessionContext,
    pub(crate) config: AnalyticsConfig,
    tables: Mutex<BTreeMap<&'static str, Table>>,
    sequence: Mutex<i64>,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("rows", &self.row_counts())
            .finish_non_exhaustive()
    }
}

impl Analytics {
    /// A session with every live table registered (empty) and the configured repair targets.
    pub fn new(config: AnalyticsConfig) -> Result<Analytics, Error> {
        let context = SessionContext::new();
        let targets = config.targets()?;
        let target_schema = Arc::new(Schema::new(vec![
            Field::new("priority", DataType::Int64, false),
            Field::new("target_hours", DataType::Int64, false),
            Field::new("emergency", DataType::Boolean, false),
        ]));
        let target_batch = RecordBatch::try_new(
            target_schema.clone(),
            vec![
                Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
                    targets.iter().map(|(code, _)| *code),
                )),
                Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
                    targets.iter().map(|(_, hours)| *hours),
                )),
                Arc::new(datafusion::arrow::array::BooleanArray::from_iter(
                    targets
                        .iter()
                        .map(|(code, _)| Some(config.emergency_priorities.contains(code))),
                )),
            ],
        )?;
        context.register_table(
            "repair_targets",
            Arc::new(MemTable::try_new(target_schema, vec![vec![target_batch]])?),
        )?;
        let analytics = Analytics {
            context,
            config,
            tables: Mutex::new(BTreeMap::new()),
            sequence: Mutex::new(0),
        };
        {
            let mut tables = analytics.tables.lock().expect("tables lock");
            for (name, schema) in schemas() {
                let table = Table {
                    schema,
                    batches: Vec::new(),
                    rows: 0,
                };
                analytics.register(name, &table)?;
                tables.insert(name, table);
            }
        }
        Ok(analytics)
    }

    fn register(&self, name: &str, table: &Table) -> Result<(), Error> {
        let provider = MemTable::try_new(table.schema.clone(), vec![table.batches.clone()])?;
        self.context.deregister_table(name)?;
        self.context.register_table(name, Arc::new(provider))?;
        Ok(())
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
            match &envelope.payload {
                Payload::RepairRequest(request) => {
                    builder_for(&mut builders, &schemas, "repair_requests").push(&[
                        id,
                        source,
                        seq,
                        Cell::Text(Some(&request.property_ref)),
                        Cell::Instant(Some(request.reported_at)),
                        Cell::Int(request.priority),
                        text(&request.channel),
                    ])
                }
                Payload::WorkOrder(order) => builder_for(&mut builders, &schemas, "work_orders")
                    .push(&[
                        id,
                        source,
                        seq,
                        text(&order.repair_request_ref),
                        Cell::Text(Some(&order.property_ref)),
                        Cell::Int(Some(order.priority)),
                        Cell::Instant(Some(order.raised_at)),
                        text(&order.contractor),
                        text(&order.trade),
                        text(&order.work_class),
                        text(&order.parent_ref),
                    ]),
                Payload::WorkOrderUpdate(update) => {
                    builder_for(&mut builders, &schemas, "work_order_updates").push(&[
                        Cell::Text(Some(&update.work_order_ref)),
                        source,
                        seq,
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
                    text(&visit.work_order_ref),
                    Cell::Text(Some(&visit.outcome)),
                    text(&visit.attribution),
                    Cell::Instant(visit.arrived_at),
                    Cell::Int(visit.contact_attempts),
                    Cell::Bool(visit.card_left),
                    Cell::Bool(visit.photo),
                ]),
                _ => continue,
            }
            *sequence += 1;
            appended += 1;
        }
        drop(sequence);
        let mut tables = self.tables.lock().expect("tables lock");
        for (name, builder) in builders {
            let batch = builder.finish()?;
            let table = tables.get_mut(name).expect("every table is registered");
            table.rows += batch.num_rows();
            table.batches.push(batch);
            self.register(name, table)?;
        }
        Ok(appended)
    }

    /// Replaces a golden-record table with `rows` (JSON objects with the table's columns).
    pub fn replace_golden(
        &self,
        name: &'static str,
        rows: &[serde_json::Value],
    ) -> Result<(), Error> {
        let mut tables = self.tables.lock().expect("tables lock");
        let table = tables
            .get_mut(name)
            .filter(|_| name.starts_with("golden_"))
            .ok_or_else(|| Error::Config(format!("no golden table `{name}`")))?;
        let mut decoder =
            datafusion::arrow::json::ReaderBuilder::new(table.schema.clone()).build_decoder()?;
        decoder.serialize(rows)?;
        table.batches = decoder.flush()?.into_iter().collect();
        table.rows = rows.len();
        self.register(name, table)
    }

    /// Rows held per table.
    pub fn row_counts(&self) -> BTreeMap<&'static str, usize> {
        self.tables
            .lock()
            .expect("tables lock")
            .iter()
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
