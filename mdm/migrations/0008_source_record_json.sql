-- goldthread 0008: stored events are kept as the JSON text they were written as (`json`, not
-- `jsonb`). They are only ever read back whole, by a restart or another process of the
-- group, and `jsonb` parsed every event into a tree on the way in and printed it again on
-- the way out; `event->>'field'` still works for people looking at them.

ALTER TABLE goldthread.source_record ALTER COLUMN event TYPE json USING event::json;
