//! The KPI tables in PostgreSQL (`goldthread.kpi_snapshot`, `kpi_live`, `kpi_exception`):
//! what BI reads of the analytics, written through the master data store's pool.

use mdm::store::Store;
use sql::KpiTable;

/// Stores a KPI table: one snapshot per day and period (the day's last computation).
/// Today's snapshot of a period's KPIs, and the data exceptions in force (replacing
/// the ones written before), in one transaction.
pub async fn write_kpis(
    store: &Store,
    table: &KpiTable,
    exceptions: &[sql::ExceptionRow],
) -> anyhow::Result<()> {
    let mut client = store.pool().get().await?;
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
                &[
                    &serde_json::to_value(&table.rows)?,
                    &now.date_naive(),
                    &table.from,
                    &table.to,
                    &now,
                ],
            )
            .await?;
    write_exceptions(&transaction, exceptions, table.as_of).await?;
    transaction.commit().await?;
    Ok(())
}

/// The live periods' KPIs (replacing each period's earlier result) and the exceptions in
/// force, in one transaction.
pub async fn write_live(
    store: &Store,
    periods: &[(&str, &KpiTable)],
    exceptions: &[sql::ExceptionRow],
    as_of: chrono::NaiveDateTime,
) -> anyhow::Result<()> {
    let mut client = store.pool().get().await?;
    let now = chrono::Utc::now();
    let transaction = client.transaction().await?;
    for (period, table) in periods {
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
                    &[
                        &serde_json::to_value(&table.rows)?,
                        period,
                        &table.from,
                        &table.to,
                        &now,
                    ],
                )
                .await?;
    }
    write_exceptions(&transaction, exceptions, as_of).await?;
    transaction.commit().await?;
    Ok(())
}

async fn write_exceptions(
    transaction: &deadpool_postgres::Transaction<'_>,
    exceptions: &[sql::ExceptionRow],
    as_of: chrono::NaiveDateTime,
) -> anyhow::Result<()> {
    transaction
        .execute("DELETE FROM goldthread.kpi_exception", &[])
        .await?;
    transaction
        .execute(
            "INSERT INTO goldthread.kpi_exception (rule, record, detail, as_of)
             SELECT r.rule, r.record, r.detail, $2
               FROM jsonb_to_recordset($1) AS r(rule text, record text, detail text)
             ON CONFLICT (rule, record) DO NOTHING",
            &[&serde_json::to_value(exceptions)?, &as_of],
        )
        .await?;
    Ok(())
}
