-- Live analytics: KPI breakdowns (a key per group), the latest results of the live periods
-- (today, this month, this regulator year) and the data exceptions in force.

ALTER TABLE goldthread.kpi_snapshot ADD COLUMN key text NOT NULL DEFAULT '';
ALTER TABLE goldthread.kpi_snapshot DROP CONSTRAINT kpi_snapshot_pkey;
ALTER TABLE goldthread.kpi_snapshot ADD PRIMARY KEY (snapshot_date, period_from, period_to, kpi, key);

-- The latest result per live period, replaced as events arrive.
CREATE TABLE goldthread.kpi_live (
    period      text NOT NULL,          -- today | month | regulator_year
    period_from date NOT NULL,
    period_to   date NOT NULL,
    kpi         text NOT NULL,
    key         text NOT NULL DEFAULT '',
    value       double precision,
    numerator   double precision,
    denominator double precision,
    computed_at timestamptz NOT NULL,
    PRIMARY KEY (period, kpi, key)
);

-- The data exceptions in force (replaced whole on each write): the rule and the record.
CREATE TABLE goldthread.kpi_exception (
    rule     text NOT NULL,
    record   text NOT NULL,
    detail   text NOT NULL,
    as_of    timestamp NOT NULL,
    PRIMARY KEY (rule, record)
);

DROP VIEW bi.repairs_kpi_daily;
CREATE VIEW bi.repairs_kpi_daily AS
    SELECT snapshot_date, period_from, period_to, kpi, NULLIF(key, '') AS key, value,
           numerator, denominator, computed_at
      FROM goldthread.kpi_snapshot;
CREATE VIEW bi.repairs_kpi_live AS
    SELECT period, period_from, period_to, kpi, NULLIF(key, '') AS key, value, numerator,
           denominator, computed_at
      FROM goldthread.kpi_live;
-- Records are named by source reference only; vulnerability exceptions carry no code.
CREATE VIEW bi.repairs_exception AS
    SELECT rule, record, detail, as_of FROM goldthread.kpi_exception;

GRANT SELECT ON ALL TABLES IN SCHEMA bi TO goldthread_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA goldthread TO goldthread_identity;
