-- goldthread 0002: the steward audit trail (who, when, what, why). Source references and
-- golden ids only: no personal data, so it survives erasure.

CREATE TABLE goldthread.steward_audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    who      text NOT NULL,
    role     text NOT NULL,
    action   text NOT NULL,       -- same | different | withdraw | split
    entity   text NOT NULL,       -- person | property
    records  jsonb NOT NULL,      -- [{"allocated_by": "hms", "id": "T000001"}, ...]
    reason   text NOT NULL,
    affected jsonb NOT NULL       -- golden ids whose membership changed
);
GRANT SELECT ON goldthread.steward_audit TO goldthread_identity;
