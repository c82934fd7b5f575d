-- goldthread 0004: erasures (a person put beyond use on request). Source references and the
-- golden id only, no personal data: a restart suppresses these records before it applies
-- anything, so files or topics read again do not bring the person back.

CREATE TABLE goldthread.erasure (
    at        timestamptz NOT NULL,
    who       text NOT NULL,
    reason    text NOT NULL,
    golden_id text NOT NULL,
    entity    text NOT NULL,          -- person | vulnerability
    source    text NOT NULL,
    source_id text NOT NULL,
    PRIMARY KEY (entity, source, source_id)
);
GRANT SELECT ON goldthread.erasure TO goldthread_identity;
