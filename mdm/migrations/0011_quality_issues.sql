-- goldthread 0011: the recording standard's issue register (mdm::quality), written with each
-- batch: every issue, opened, seen again and resolved, so BI counts what is open in any week
-- and a restart keeps when each issue was first seen. Issues name records by source
-- reference (for the teams that fix them); BI sees them without it.

CREATE TABLE goldthread.quality_issue (
    rule        text NOT NULL,
    source      text NOT NULL,          -- the record: its system and id
    source_id   text NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    resolved_at timestamptz,            -- NULL while open
    dimension   text NOT NULL,          -- completeness | validity | consistency | uniqueness | timeliness
    severity    text NOT NULL,          -- low | medium | high
    owner       text NOT NULL,          -- the team that fixes it
    system      text NOT NULL,          -- the system where the fix is made
    golden_id   text,
    problem     text NOT NULL,          -- what is wrong, without values
    fix         text NOT NULL,
    PRIMARY KEY (rule, source, source_id, first_seen)
);
CREATE INDEX quality_issue_open ON goldthread.quality_issue (owner, rule) WHERE resolved_at IS NULL;
GRANT SELECT ON goldthread.quality_issue TO goldthread_identity;

-- BI: no source reference and no problem text (it may name a record), only what counts.
CREATE VIEW bi.quality_issue AS
    SELECT rule, dimension, severity, owner, system, source AS record_system, golden_id,
           first_seen, last_seen, resolved_at
      FROM goldthread.quality_issue;

-- Issues open at the end of each ISO week since the first one, per rule, owner and system.
CREATE VIEW bi.quality_weekly AS
    SELECT to_char(week, 'IYYY-"W"IW') AS week, i.rule, i.dimension, i.severity, i.owner,
           i.system, count(*) AS open_issues
      FROM generate_series(
               date_trunc('week', (SELECT min(first_seen) FROM goldthread.quality_issue)),
               date_trunc('week', now()), interval '1 week') AS week
      JOIN goldthread.quality_issue i
        ON i.first_seen < week + interval '1 week'
       AND (i.resolved_at IS NULL OR i.resolved_at >= week + interval '1 week')
     GROUP BY week, i.rule, i.dimension, i.severity, i.owner, i.system;

GRANT SELECT ON ALL TABLES IN SCHEMA bi TO goldthread_bi;
