-- goldthread 0009: dead letters kept in the store, by the record they are about where its id
-- could be read: stewards find them, a subject access report lists them, and an erasure
-- redacts their raw rows (the dead-letter topic gets tombstones for the same keys).

CREATE TABLE goldthread.dead_letter (
    source      text NOT NULL,          -- the configured source or stage that rejected it
    position    text NOT NULL,          -- file:line, topic/partition@offset, webhook/name/id
    field       text,
    reason      text NOT NULL,
    raw         text NOT NULL,          -- '[erased]' once the record is erased
    rejected_at timestamptz NOT NULL,
    ref_source  text,                   -- the record: its system and id, when read
    ref_id      text,
    PRIMARY KEY (source, position)
);
CREATE INDEX dead_letter_record ON goldthread.dead_letter (ref_source, ref_id);
GRANT SELECT ON goldthread.dead_letter TO goldthread_identity;
