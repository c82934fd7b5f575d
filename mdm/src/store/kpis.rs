//! The KPI tables (`goldthread.kpi_snapshot`, `kpi_live`, `kpi_exception`, migration 0006):
//! what BI reads of the analytics. The analytics' rows go over as JSON (this crate does not
//! know the `sql` crate's types, only that they serialise with the fields below);
//! PostgreSQL takes them apart with `jsonb_to_recordset`.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use tokio_postgres::types::Json;

use super::{Result, Store};

/// Rows to store: any rows that serialise as JSON objects with the columns named.
pub trait Rows: Serialize + std::fmt::Debug + Sync {}
impl<T: Serialize + std::fmt::Debug + Sync + ?Sized> Rows for T {}

/// One period's KPI rows (each `{kpi, key, value, numerator, denominator}`).
#[derive(Debug)]
pub struct KpiRows<'a, R: ?Sized> {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rows: &'a R,
}

impl Store {
    /// Today's snapshot of a period's KPIs (one per day and period: the day's last
    /// computation replaces the earlier ones) and the data exceptions in force
    /// (`[{rule, record, detail}]`, replacing the ones written before), in one transaction.
    pub async fn write_kpi_snapshot(
        &self,
        kpis: KpiRows<'_, impl Rows + ?Sized>,
        exceptions: &(impl Rows + ?Sized),
        as_of: NaiveDateTime,
    ) -> Result<()> {
        let mut client = self.pool().get().await?;
        let now = chrono::Utc::now();
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "INSERT INTO goldthread.kpi_snapshot
                   (snapshot_date, period_from, period_to, kpi, key, value, numerator, denominator, computed_at)
                 SELECT $2, $3, $4, r.kpi, COALESCE(r.key, ''), r.value, r.numerator, r.denominator, $5
                   FROM jsonb_to_recordset($1) AS r(kpi text, key text, value float8, numerator float8, denominator float8)
                 ON CONFLICT (snapshot_date, period_from, period_to, kpi, key) DO UPDATE
                 SET value = EXCLUDED.value, numerator = EXCLUDED.numerator,
                     denominator = EXCLUDED.denominator, computed_at = EXCLUDED.computed_at",
                &[&Json(kpis.rows), &now.date_naive(), &kpis.from, &kpis.to, &now],
            )
            .await?;
        write_exceptions(&transaction, exceptions, as_of).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The live periods' KPIs, each replacing its period's earlier result, and the
    /// exceptions in force, in one transaction.
    pub async fn write_kpi_live(
        &self,
        periods: &[(&str, KpiRows<'_, impl Rows + ?Sized>)],
        exceptions: &(impl Rows + ?Sized),
        as_of: NaiveDateTime,
    ) -> Result<()> {
        let mut client = self.pool().get().await?;
        let now = chrono::Utc::now();
        let transaction = client.transaction().await?;
        for (period, kpis) in periods {
            transaction
                .execute(
                    "DELETE FROM goldthread.kpi_live WHERE period = $1",
                    &[period],
                )
                .await?;
            transaction
                .execute(
                    "INSERT INTO goldthread.kpi_live
                       (period, period_from, period_to, kpi, key, value, numerator, denominator, computed_at)
                     SELECT $2, $3, $4, r.kpi, COALESCE(r.key, ''), r.value, r.numerator, r.denominator, $5
                       FROM jsonb_to_recordset($1) AS r(kpi text, key text, value float8, numerator float8, denominator float8)",
                    &[&Json(kpis.rows), period, &kpis.from, &kpis.to, &now],
                )
                .await?;
        }
        write_exceptions(&transaction, exceptions, as_of).await?;
        transaction.commit().await?;
        Ok(())
    }
}

async fn write_exceptions(
    transaction: &deadpool_postgres::Transaction<'_>,
    exceptions: &(impl Rows + ?Sized),
    as_of: NaiveDateTime,
) -> Result<()> {
    transaction
        .execute("DELETE FROM goldthread.kpi_exception", &[])
        .await?;
    transaction
        .execute(
            "INSERT INTO goldthread.kpi_exception (rule, record, detail, as_of)
             SELECT r.rule, r.record, r.detail, $2
               FROM jsonb_to_recordset($1) AS r(rule text, record text, detail text)
             ON CONFLICT (rule, record) DO NOTHING",
            &[&Json(exceptions), &as_of],
        )
        .await?;
    Ok(())
}
