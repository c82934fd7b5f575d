-- Several processes of one consumer group may share a store: before each write, a process
-- reads the source records the others wrote since it last looked (`seq` above its mark).

CREATE INDEX source_record_by_seq ON goldthread.source_record (seq);
