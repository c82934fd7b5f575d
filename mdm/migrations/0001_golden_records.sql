-- goldthread 0001: golden records, cross-reference, decisions, review queue, KPI snapshots,
-- consumed positions; the BI schema and its roles.
--
-- Schema `goldthread` holds identity data; schema `bi` holds views over pseudonymous golden
-- ids and non-identifying attributes. Role `goldthread_bi` reads `bi` only; role
-- `goldthread_identity` reads `goldthread` too. Grant them to login roles:
--   CREATE ROLE powerbi LOGIN PASSWORD '...' IN ROLE goldthread_bi;

CREATE SCHEMA IF NOT EXISTS goldthread;
CREATE SCHEMA IF NOT EXISTS bi;

CREATE TABLE goldthread.golden_person (
    golden_id     text PRIMARY KEY,
    title         text,
    given_name    text,
    middle_name   text,
    family_name   text,
    date_of_birth date,
    nino          text,
    phone         text,
    email         text,
    postcode      text,
    sources       jsonb NOT NULL,   -- [{"allocated_by": "hms", "id": "T000001"}, ...]
    lineage       jsonb NOT NULL    -- {"given_name": {"allocated_by": "hms", "id": ...}, ...}
);

CREATE TABLE goldthread.golden_property (
    golden_id        text PRIMARY KEY,
    uprn             text,
    parent_uprn      text,
    parent_golden_id text,
    saon             text,
    paon             text,
    street           text,
    locality         text,
    town             text,
    postcode         text,
    property_type    text,
    sources          jsonb NOT NULL,
    lineage          jsonb NOT NULL
);

CREATE TABLE goldthread.xref (
    entity    text NOT NULL,        -- person | property
    source    text NOT NULL,        -- the system that allocated the id
    source_id text NOT NULL,
    golden_id text NOT NULL,
    PRIMARY KEY (entity, source, source_id)
);
CREATE INDEX xref_golden ON goldthread.xref (golden_id);

CREATE TABLE goldthread.tenancy (
    source             text NOT NULL,
    tenancy_id         text NOT NULL,
    golden_property_id text,
    golden_person_ids  text[] NOT NULL,
    start_date         date,
    end_date           date,
    tenure             text,
    PRIMARY KEY (source, tenancy_id)
);

-- Every link inside every golden record, with who decided it and why.
CREATE TABLE goldthread.match_decision (
    entity      text NOT NULL,
    golden_id   text NOT NULL,
    source_a    text NOT NULL,
    source_id_a text NOT NULL,
    source_b    text NOT NULL,
    source_id_b text NOT NULL,
    decided_by  text NOT NULL,      -- model | rule | steward
    probability double precision,
    explanation jsonb,
    PRIMARY KEY (entity, source_a, source_id_a, source_b, source_id_b)
);

CREATE TABLE goldthread.review_queue (
    entity      text NOT NULL,
    source_a    text NOT NULL,
    source_id_a text NOT NULL,
    golden_id_a text NOT NULL,
    source_b    text NOT NULL,
    source_id_b text NOT NULL,
    golden_id_b text NOT NULL,
    probability double precision NOT NULL,
    explanation jsonb NOT NULL,
    PRIMARY KEY (entity, source_a, source_id_a, source_b, source_id_b)
);

CREATE TABLE goldthread.kpi_snapshot (
    period_from date NOT NULL,
    period_to   date NOT NULL,
    kpi         text NOT NULL,
    value       double precision,
    numerator   double precision,
    denominator double precision,
    computed_at timestamptz NOT NULL,
    PRIMARY KEY (period_from, period_to, kpi)
);

-- The next offset to read per topic partition, written in the transaction that wrote what
-- those events produced.
CREATE TABLE goldthread.consumed (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- BI: pseudonymous golden ids and non-identifying attributes only.
CREATE VIEW bi.golden_person AS
    SELECT golden_id,
           split_part(postcode, ' ', 1) AS postcode_district,
           jsonb_array_length(sources)  AS source_records,
           (SELECT array_agg(DISTINCT s->>'allocated_by' ORDER BY s->>'allocated_by')
              FROM jsonb_array_elements(sources) s) AS systems
      FROM goldthread.golden_person;

CREATE VIEW bi.golden_property AS
    SELECT golden_id, uprn, parent_uprn, parent_golden_id, saon, paon, street, locality,
           town, postcode, property_type, jsonb_array_length(sources) AS source_records
      FROM goldthread.golden_property;

CREATE VIEW bi.tenancy AS
    SELECT source, tenancy_id, golden_property_id, golden_person_ids, start_date, end_date,
           tenure
      FROM goldthread.tenancy;

CREATE VIEW bi.repairs_kpi AS
    SELECT period_from, period_to, kpi, value, numerator, denominator, computed_at
      FROM goldthread.kpi_snapshot;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'goldthread_bi') THEN
        CREATE ROLE goldthread_bi NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'goldthread_identity') THEN
        CREATE ROLE goldthread_identity NOLOGIN IN ROLE goldthread_bi;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA bi TO goldthread_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA bi TO goldthread_bi;
GRANT USAGE ON SCHEMA goldthread TO goldthread_identity;
GRANT SELECT ON ALL TABLES IN SCHEMA goldthread TO goldthread_identity;
