-- goldthread 0003: what a restart rebuilds the engine from (the latest version of every
-- source record, the steward verdicts in force); cross-reference history with valid from /
-- to; merge history; tenancies and vulnerabilities by source reference (vulnerabilities with
-- their review and end dates); households; daily KPI snapshots.

-- The latest event of every source record, keyed by source reference: on restart the engine
-- applies these again (in `seq` order) before it consumes on from `goldthread.consumed`.
-- Written in the same transaction as the rows derived from them.
CREATE SEQUENCE goldthread.source_record_seq;
CREATE TABLE goldthread.source_record (
    kind      text NOT NULL,          -- person | property | tenancy | work_order | ...
    source    text NOT NULL,          -- the system that allocated the id
    source_id text NOT NULL,
    seq       bigint NOT NULL,        -- order of the last write
    event     jsonb NOT NULL,         -- the canonical event (pipeline::Envelope)
    PRIMARY KEY (kind, source, source_id)
);

-- Steward verdicts in force (a withdrawn verdict is deleted; the audit keeps the story).
CREATE TABLE goldthread.steward_verdict (
    entity      text NOT NULL,        -- person | property
    source_a    text NOT NULL,
    source_id_a text NOT NULL,
    source_b    text NOT NULL,
    source_id_b text NOT NULL,
    verdict     text NOT NULL,        -- same | different
    PRIMARY KEY (entity, source_a, source_id_a, source_b, source_id_b)
);

-- Every golden id a source record has had, and when goldthread held it (`valid_to` NULL:
-- current). `goldthread.xref` is the current state.
CREATE TABLE goldthread.xref_history (
    entity     text NOT NULL,
    source     text NOT NULL,
    source_id  text NOT NULL,
    golden_id  text NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to   timestamptz
);
CREATE INDEX xref_history_record ON goldthread.xref_history (entity, source, source_id);
CREATE UNIQUE INDEX xref_history_current ON goldthread.xref_history (entity, source, source_id)
    WHERE valid_to IS NULL;

-- Golden ids absorbed into another (a merge) and their return (an unmerge): an id stored
-- yesterday resolves through `goldthread.redirect`.
CREATE TABLE goldthread.redirect (
    entity      text NOT NULL,
    golden_id   text NOT NULL,
    survivor_id text NOT NULL,
    PRIMARY KEY (entity, golden_id)
);
CREATE TABLE goldthread.merge_history (
    at          timestamptz NOT NULL,
    entity      text NOT NULL,
    event       text NOT NULL,        -- merged | unmerged
    golden_id   text NOT NULL,        -- the absorbed (or revived) id
    survivor_id text NOT NULL         -- the id it was absorbed into
);
CREATE INDEX merge_history_golden ON goldthread.merge_history (golden_id);

-- Tenancies and vulnerabilities as their sources sent them (source references); golden ids
-- come through the cross-reference in views, so a merge or an unmerge never leaves them
-- pointing at an old golden id. Replaces 0001's table `goldthread.tenancy` with a view of the
-- same columns.
DROP VIEW bi.tenancy;
DROP TABLE goldthread.tenancy;

CREATE TABLE goldthread.tenancy_record (
    source       text NOT NULL,
    tenancy_id   text NOT NULL,
    property_ref text NOT NULL,       -- a property id allocated by `source`
    party_refs   text[] NOT NULL,     -- person ids allocated by `source`, in source order
    start_date   date,
    end_date     date,
    tenure       text,
    PRIMARY KEY (source, tenancy_id)
);

-- Vulnerabilities (special category data, DOMAIN.md §5): identity schema only.
CREATE TABLE goldthread.vulnerability_record (
    source           text NOT NULL,
    vulnerability_id text NOT NULL,
    person_ref       text NOT NULL,   -- a person id allocated by `source`
    code             text NOT NULL,
    description      text,
    start_date       date,
    end_date         date,
    review_date      date,
    PRIMARY KEY (source, vulnerability_id)
);

-- Parties or a property whose record has not arrived (or was erased) are left out / NULL.
CREATE VIEW goldthread.tenancy AS
    SELECT t.source, t.tenancy_id, p.golden_id AS golden_property_id,
           coalesce((SELECT array_agg(x.golden_id ORDER BY r.n)
                       FROM unnest(t.party_refs) WITH ORDINALITY AS r(ref, n)
                       JOIN goldthread.xref x
                         ON x.entity = 'person' AND x.source = t.source AND x.source_id = r.ref),
                    '{}') AS golden_person_ids,
           t.start_date, t.end_date, t.tenure
      FROM goldthread.tenancy_record t
      LEFT JOIN goldthread.xref p
        ON p.entity = 'property' AND p.source = t.source AND p.source_id = t.property_ref;

CREATE VIEW bi.tenancy AS
    SELECT source, tenancy_id, golden_property_id, golden_person_ids, start_date, end_date,
           tenure
      FROM goldthread.tenancy;

CREATE VIEW goldthread.vulnerability AS
    SELECT v.source, v.vulnerability_id, x.golden_id AS golden_person_id, v.code,
           v.description, v.start_date, v.end_date, v.review_date
      FROM goldthread.vulnerability_record v
      LEFT JOIN goldthread.xref x
        ON x.entity = 'person' AND x.source = v.source AND x.source_id = v.person_ref;

-- Active until the end date passes, whatever was loaded; reviews past their date flagged.
CREATE VIEW goldthread.vulnerability_status AS
    SELECT v.*,
           (coalesce(start_date <= current_date, true)
            AND coalesce(end_date >= current_date, true)) AS active,
           (coalesce(start_date <= current_date, true)
            AND coalesce(end_date >= current_date, true)
            AND coalesce(review_date < current_date, false)) AS review_overdue
      FROM goldthread.vulnerability v;

-- A household: the people on one current tenancy of a home.
CREATE VIEW goldthread.household AS
    SELECT 'HH-' || left(md5(source || chr(31) || tenancy_id), 16) AS household_id,
           source, tenancy_id, golden_property_id, golden_person_ids,
           cardinality(golden_person_ids) AS members, start_date, tenure
      FROM goldthread.tenancy
     WHERE end_date IS NULL OR end_date >= current_date;

CREATE VIEW bi.household AS
    SELECT household_id, golden_property_id, golden_person_ids, members, start_date, tenure
      FROM goldthread.household;

-- What contractors may be told: a home needs care at the visit, nothing of why.
CREATE VIEW bi.contractor_alert AS
    SELECT DISTINCT h.golden_property_id, true AS take_extra_care
      FROM goldthread.household h
      JOIN goldthread.vulnerability_status v
        ON v.active AND v.golden_person_id = ANY (h.golden_person_ids)
     WHERE h.golden_property_id IS NOT NULL;

CREATE VIEW bi.golden_id_redirect AS
    SELECT entity, golden_id, survivor_id FROM goldthread.redirect;

CREATE VIEW bi.merge_history AS
    SELECT at, entity, event, golden_id, survivor_id FROM goldthread.merge_history;

-- One KPI snapshot a day (the day's last computation), per period.
ALTER TABLE goldthread.kpi_snapshot ADD COLUMN snapshot_date date NOT NULL DEFAULT current_date;
ALTER TABLE goldthread.kpi_snapshot DROP CONSTRAINT kpi_snapshot_pkey;
ALTER TABLE goldthread.kpi_snapshot ADD PRIMARY KEY (snapshot_date, period_from, period_to, kpi);

CREATE INDEX match_decision_golden ON goldthread.match_decision (entity, golden_id);

CREATE VIEW bi.repairs_kpi_daily AS
    SELECT snapshot_date, period_from, period_to, kpi, value, numerator, denominator,
           computed_at
      FROM goldthread.kpi_snapshot;

GRANT SELECT ON ALL TABLES IN SCHEMA bi TO goldthread_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA goldthread TO goldthread_identity;
