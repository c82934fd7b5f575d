-- goldthread 0005: positions of sources goldthread polls itself ([[postgres_sources]]): the
-- last cursor value whose rows were produced and acknowledged, so a restart reads on from
-- there.

CREATE TABLE goldthread.source_position (
    source     text PRIMARY KEY,
    position   text NOT NULL,
    updated_at timestamptz NOT NULL
);
GRANT SELECT ON goldthread.source_position TO goldthread_identity;
