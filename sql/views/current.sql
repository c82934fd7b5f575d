-- The current state of each record over the live tables, which keep every version (one row
-- per event, `seq` = arrival order). Every KPI and exception query reads these views.
-- Portable SQL: DataFusion runs it over the live tables, DuckDB over their export
-- (sql/duckdb/compare.py), and the results must agree.
--
-- `latest_<table>`: the latest version of each record (by `ref`, or by `source` and `ref` for
-- tenancies and vulnerabilities), every column of the table. goldthread keeps these, and
-- `appointment_days`, `repair_days`, `order_days` and `hazard_days`, up to date as events
-- arrive instead of running their definitions (`sql::tables`, `sql::kept`), and any other
-- engine runs them as written.

CREATE VIEW latest_repair_requests AS
SELECT ref, source, seq, changed_at, property_ref, reported_at, priority, channel, due_at FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS version FROM repair_requests
) latest WHERE version = 1;

CREATE VIEW latest_work_orders AS
SELECT ref, source, seq, changed_at, repair_request_ref, property_ref, priority, raised_at, contractor, trade, work_class, parent_ref, due_at FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS version FROM work_orders
) latest WHERE version = 1;

CREATE VIEW latest_appointments AS
SELECT ref, source, seq, changed_at, work_order_ref, slot_date, slot, window_start, window_end, booked_at, reminder_sent FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS version FROM appointments
) latest WHERE version = 1;

CREATE VIEW latest_visits AS
SELECT ref, source, seq, changed_at, work_order_ref, outcome, attribution, arrived_at, contact_attempts, card_left, photo FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS version FROM visits
) latest WHERE version = 1;

CREATE VIEW latest_properties AS
SELECT ref, source, seq, changed_at, uprn, postcode, property_type FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS version FROM properties
) latest WHERE version = 1;

CREATE VIEW latest_tenancies AS
SELECT ref, source, seq, changed_at, property_ref, start_date, end_date FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY source, ref ORDER BY seq DESC) AS version FROM tenancies
) latest WHERE version = 1;

CREATE VIEW latest_vulnerabilities AS
SELECT ref, source, seq, changed_at, start_date, end_date, review_date FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY source, ref ORDER BY seq DESC) AS version FROM vulnerabilities
) latest WHERE version = 1;

CREATE VIEW current_repair_requests AS
SELECT ref, source, property_ref, reported_at, priority, channel, due_at FROM latest_repair_requests;

CREATE VIEW current_tenancies AS
SELECT ref, source, property_ref, start_date, end_date FROM latest_tenancies;

CREATE VIEW current_work_orders AS
SELECT ref, source, repair_request_ref, property_ref, priority, raised_at, contractor, trade,
       COALESCE(work_class, 'responsive') AS work_class, parent_ref, due_at FROM latest_work_orders;

-- Per work order: its first version (the first to arrive), whose priority and target are the
-- priority at report time when no repair request arrived.
CREATE VIEW first_work_orders AS
SELECT w.ref, w.priority, w.due_at
FROM work_orders w
JOIN (SELECT ref, MIN(seq) AS seq FROM work_orders GROUP BY ref) first_version
  ON first_version.ref = w.ref AND first_version.seq = w.seq;

-- Per work order: when it was completed and when cancelled (the latest of each status).
CREATE VIEW work_order_status AS
SELECT ref,
    MAX(CASE WHEN status = 'completed' THEN status_at END) AS completed_at,
    MAX(CASE WHEN status = 'cancelled' THEN status_at END) AS cancelled_at
FROM work_order_updates GROUP BY ref;

-- A repair: the current work order, its request's report time and priority (the clock and
-- the target come from the report: without a request, from the work order as first raised),
-- and its status.
CREATE VIEW repairs AS
SELECT w.ref, w.property_ref, w.contractor, w.trade, w.work_class, w.raised_at,
    r.reported_at, COALESCE(r.reported_at, w.raised_at) AS clock_start,
    COALESCE(r.priority, f.priority) AS priority, w.priority AS current_priority,
    COALESCE(r.due_at, f.due_at) AS due_at, w.repair_request_ref, w.parent_ref,
    s.completed_at, s.cancelled_at
FROM current_work_orders w
LEFT JOIN current_repair_requests r ON r.ref = w.repair_request_ref
LEFT JOIN first_work_orders f ON f.ref = w.ref
LEFT JOIN work_order_status s ON s.ref = w.ref;

-- One row per property reference (work orders name properties by reference alone).
CREATE VIEW current_properties AS
SELECT ref, source, uprn, postcode, split_part(postcode, ' ', 1) AS patch, property_type
FROM latest_properties;

-- An appointment with its latest outcome (none yet: NULL), the work order's contractor,
-- trade and property, its slot's width and weekday, and whether a resident no-access came
-- with the evidence DOMAIN.md asks for (arrival inside the slot, a contact attempt, a card).
CREATE VIEW appointment_outcomes AS
SELECT a.ref, a.work_order_ref, a.slot_date, COALESCE(a.slot, 'unknown') AS slot,
    (date_part('epoch', a.window_end) - date_part('epoch', a.window_start)) / 3600 AS slot_hours,
    CAST(date_part('dow', a.slot_date) AS BIGINT) AS weekday,
    a.window_start, a.window_end, a.booked_at, a.reminder_sent,
    v.outcome, v.attribution, v.arrived_at, v.contact_attempts, v.card_left, v.photo,
    (v.arrived_at IS NOT NULL AND v.arrived_at >= a.window_start AND v.arrived_at <= a.window_end
        AND COALESCE(v.contact_attempts, 0) >= 1 AND COALESCE(v.card_left, false)) AS evidenced,
    w.contractor, w.trade, w.property_ref, COALESCE(p.patch, 'unknown') AS patch
FROM latest_appointments a
LEFT JOIN latest_visits v ON v.ref = a.ref
LEFT JOIN current_work_orders w ON w.ref = a.work_order_ref
LEFT JOIN current_properties p ON p.ref = w.property_ref;

-- Appointments per slot date and group: what the appointment KPIs count. An appointment's
-- next one is the next of the same work order by slot date, window start and reference
-- (whatever its slot date): a failed appointment with a next one was rebooked, and the
-- days between the two slots are the delay it added. Attribution is kept for appointments
-- that did not go ahead, evidence for no-access, and `reminded` says whether a reminder was sent.
-- goldthread keeps this table as events arrive instead of running this definition
-- (`sql::kept`), and any other engine runs it as written.
CREATE VIEW appointment_days AS
SELECT slot_date, weekday, slot, slot_hours, outcome, attribution, evidenced, reminded,
    contractor, trade, patch,
    COUNT(*) AS appointments,
    SUM(CASE WHEN next_slot_date IS NOT NULL THEN 1 ELSE 0 END) AS rebooked,
    SUM(CASE WHEN next_slot_date IS NOT NULL
             THEN (date_part('epoch', CAST(next_slot_date AS TIMESTAMP)) - date_part('epoch', CAST(slot_date AS TIMESTAMP))) / 86400
             ELSE 0 END) AS delay_days
FROM (
    SELECT slot_date, weekday, slot, slot_hours, outcome,
        CASE WHEN outcome IN ('no_access', 'aborted', 'missed', 'cancelled') THEN attribution END AS attribution,
        CASE WHEN outcome = 'no_access' THEN evidenced END AS evidenced,
        COALESCE(reminder_sent, false) AS reminded,
        contractor, trade, patch,
        LEAD(slot_date) OVER (PARTITION BY work_order_ref ORDER BY slot_date, window_start, ref) AS next_slot_date
    FROM appointment_outcomes
) appointment
GROUP BY slot_date, weekday, slot, slot_hours, outcome, attribution, evidenced, reminded,
    contractor, trade, patch;

-- Per work order: its first visit, the earliest appointment (slot date, window start,
-- reference) at which an operative attended and worked.
CREATE VIEW first_visits AS
SELECT work_order_ref, outcome, arrived_at, slot_date FROM (
    SELECT work_order_ref, outcome, arrived_at, slot_date,
        ROW_NUMBER() OVER (PARTITION BY work_order_ref ORDER BY slot_date, window_start, ref) AS visit
    FROM appointment_outcomes
    WHERE outcome IN ('kept_completed', 'kept_not_completed', 'aborted')
) visits WHERE visit = 1;

-- Completed repairs (a completion and no cancellation) per completion day and group: what
-- RP02, HMPI 90 and HMPI 101 count. `days` is the end-to-end time in calendar days from the
-- report day (the raised day when no request arrived) to the completion day, counting both.
-- `first_visit_outcome` is the outcome of the work order's first visit (`first_visits`), if
-- any. `occupied`: a tenancy (any source) naming the repair's property was in force on the
-- report day (start and end days included, a missing start or end open), NULL when no tenancy
-- is known at all, so a landlord who streams no tenancies can still count its repairs.
-- Kept by goldthread (`sql::kept`), as `appointment_days`.
CREATE VIEW repair_days AS
SELECT completed_on, priority, work_class, within_target, days, first_visit_outcome, occupied,
    COUNT(*) AS repairs
FROM (
    SELECT CAST(r.completed_at AS DATE) AS completed_on, r.priority, r.work_class,
        CASE WHEN r.due_at IS NOT NULL AND r.completed_at <= r.due_at THEN true ELSE false END AS within_target,
        CAST((date_part('epoch', date_trunc('day', r.completed_at))
              - date_part('epoch', date_trunc('day', r.clock_start))) / 86400 + 1 AS DOUBLE) AS days,
        f.outcome AS first_visit_outcome,
        CASE WHEN k.tenancies = 0 THEN NULL WHEN o.ref IS NOT NULL THEN true ELSE false END AS occupied
    FROM repairs r
    LEFT JOIN first_visits f ON f.work_order_ref = r.ref
    LEFT JOIN (
        SELECT DISTINCT r.ref FROM repairs r
        JOIN current_tenancies t ON t.property_ref = r.property_ref
        WHERE (t.start_date IS NULL OR t.start_date <= CAST(r.clock_start AS DATE))
          AND (t.end_date IS NULL OR t.end_date >= CAST(r.clock_start AS DATE))
    ) o ON o.ref = r.ref
    CROSS JOIN (SELECT COUNT(*) AS tenancies FROM current_tenancies) k
    WHERE r.completed_at IS NOT NULL AND r.cancelled_at IS NULL
) repair
GROUP BY completed_on, priority, work_class, within_target, days, first_visit_outcome, occupied;

-- Work orders per raised day: cancelled or not, and booked (an appointment not cancelled,
-- any slot date) or not. Kept by goldthread (`sql::kept`), as `appointment_days`.
CREATE VIEW order_days AS
SELECT raised_on, cancelled, booked, COUNT(*) AS orders
FROM (
    SELECT CAST(r.raised_at AS DATE) AS raised_on,
        CASE WHEN r.cancelled_at IS NOT NULL THEN true ELSE false END AS cancelled,
        CASE WHEN b.work_order_ref IS NOT NULL THEN true ELSE false END AS booked
    FROM repairs r
    LEFT JOIN (
        SELECT DISTINCT work_order_ref FROM appointment_outcomes
        WHERE outcome IS NULL OR outcome <> 'cancelled'
    ) b ON b.work_order_ref = r.ref
) work_order
GROUP BY raised_on, cancelled, booked;

-- Awaab's Law hazards per report day: responsive repairs, not cancelled, whose priority at
-- report time `repair_targets` marks as an emergency hazard or whose trade is in
-- `hazard_trades`. The clock starts at the report (the raised time when no request arrived).
-- `made_safe_24h`: completed within 24 hours of it. `open_since`: the clock start of a repair
-- not completed yet. `investigated_on`: the day of the first visit (its arrival, else its slot
-- date, from `first_visits`). Kept by goldthread (`sql::kept`), as `appointment_days`.
CREATE VIEW hazard_days AS
SELECT reported_on, emergency, significant, completed_on, made_safe_24h, open_since,
    investigated_on, COUNT(*) AS repairs
FROM (
    SELECT CAST(r.clock_start AS DATE) AS reported_on,
        COALESCE(t.awaab_emergency, false) AS emergency,
        CASE WHEN h.trade IS NOT NULL THEN true ELSE false END AS significant,
        CAST(r.completed_at AS DATE) AS completed_on,
        CASE WHEN r.completed_at IS NOT NULL
              AND date_part('epoch', r.completed_at) - date_part('epoch', r.clock_start) <= 86400
             THEN true ELSE false END AS made_safe_24h,
        CASE WHEN r.completed_at IS NULL THEN r.clock_start END AS open_since,
        COALESCE(CAST(f.arrived_at AS DATE), f.slot_date) AS investigated_on
    FROM repairs r
    LEFT JOIN repair_targets t ON t.priority = r.priority
    LEFT JOIN hazard_trades h ON h.trade = r.trade
    LEFT JOIN first_visits f ON f.work_order_ref = r.ref
    WHERE r.cancelled_at IS NULL AND r.work_class = 'responsive'
      AND (COALESCE(t.awaab_emergency, false) OR h.trade IS NOT NULL)
) hazard
GROUP BY reported_on, emergency, significant, completed_on, made_safe_24h, open_since,
    investigated_on;

CREATE VIEW current_vulnerabilities AS
SELECT ref, source, start_date, end_date, review_date FROM latest_vulnerabilities;
