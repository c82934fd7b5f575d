-- goldthread 0010: every version of the repairs records, for the analytics.
--
-- `source_record` keeps the latest event of each source record: enough for the master data,
-- which only ever reads the latest. The repairs analytics read history: the priority a work
-- order had when it was reported and whether it was lowered after its target, every status
-- update of a work order (a cancellation and a later completion), an appointment moved. A
-- restart that replayed only the latest versions into them (and then consumed on from the
-- stored positions) computed those from less than a run that never stopped.
--
-- Every event of the repairs kinds is kept here, once per event id (a replayed event is the
-- same event), numbered from `source_record_seq` so that a restart merges the two tables in
-- arrival order. They carry no personal data beyond free-text descriptions (as
-- `source_record` did); erasure does not reach them.
CREATE TABLE goldthread.source_event (
    event_id  text PRIMARY KEY,
    seq       bigint NOT NULL,
    kind      text NOT NULL,          -- repair_request | work_order | work_order_update | appointment | visit
    source    text NOT NULL,
    source_id text NOT NULL,
    event     json NOT NULL           -- the canonical event (pipeline::Envelope)
);
CREATE INDEX source_event_seq ON goldthread.source_event (seq);

-- What an earlier version of goldthread stored: the latest version of each repairs record.
INSERT INTO goldthread.source_event
SELECT event->>'event_id', seq, kind, source, source_id, event
  FROM goldthread.source_record
 WHERE kind IN ('repair_request', 'work_order', 'work_order_update', 'appointment', 'visit')
ON CONFLICT DO NOTHING;
