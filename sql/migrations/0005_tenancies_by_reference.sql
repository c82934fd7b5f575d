-- goldthread 0005: tenancies and vulnerabilities stored as their sources sent them (source
-- references), with golden ids resolved through the cross-reference in views, so a merge or
-- an unmerge never leaves them pointing at an old golden id. Each batch now writes only the
-- rows that changed.

DROP VIEW bi.contractor_alert;
DROP VIEW bi.household;
DROP VIEW goldthread.household;
DROP VIEW bi.tenancy;
DROP VIEW goldthread.vulnerability_status;
DROP TABLE goldthread.tenancy;
DROP TABLE goldthread.vulnerability;

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

CREATE VIEW goldthread.vulnerability AS
    SELECT v.source, v.vulnerability_id, x.golden_id AS golden_person_id, v.code,
           v.description, v.start_date, v.end_date, v.review_date
      FROM goldthread.vulnerability_record v
      LEFT JOIN goldthread.xref x
        ON x.entity = 'person' AND x.source = v.source AND x.source_id = v.person_ref;

CREATE VIEW goldthread.vulnerability_status AS
    SELECT v.*,
           (coalesce(start_date <= current_date, true)
            AND coalesce(end_date >= current_date, true)) AS active,
           (coalesce(start_date <= current_date, true)
            AND coalesce(end_date >= current_date, true)
            AND coalesce(review_date < current_date, false)) AS review_overdue
      FROM goldthread.vulnerability v;

CREATE VIEW goldthread.household AS
    SELECT 'HH-' || left(md5(source || chr(31) || tenancy_id), 16) AS household_id,
           source, tenancy_id, golden_property_id, golden_person_ids,
           cardinality(golden_person_ids) AS members, start_date, tenure
      FROM goldthread.tenancy
     WHERE end_date IS NULL OR end_date >= current_date;

CREATE VIEW bi.tenancy AS
    SELECT source, tenancy_id, golden_property_id, golden_person_ids, start_date, end_date,
           tenure
      FROM goldthread.tenancy;

CREATE VIEW bi.household AS
    SELECT household_id, golden_property_id, golden_person_ids, members, start_date, tenure
      FROM goldthread.household;

CREATE VIEW bi.contractor_alert AS
    SELECT DISTINCT h.golden_property_id, true AS take_extra_care
      FROM goldthread.household h
      JOIN goldthread.vulnerability_status v
        ON v.active AND v.golden_person_id = ANY (h.golden_person_ids)
     WHERE h.golden_property_id IS NOT NULL;

CREATE INDEX match_decision_golden ON goldthread.match_decision (entity, golden_id);

GRANT SELECT ON ALL TABLES IN SCHEMA bi TO goldthread_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA goldthread TO goldthread_identity;
