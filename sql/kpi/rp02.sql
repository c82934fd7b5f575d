-- TSM RP02: % of responsive repairs completed within the landlord's target timescale,
-- emergency and non-emergency separately.
-- Source: Regulator of Social Housing, Tenant Satisfaction Measures (RP02); DOMAIN.md §4.
--
-- Denominator: responsive work orders (work_class responsive or unset; void and planned work
--   excluded) completed between $from and $to (inclusive, by completion date); a work order
--   with a cancellation is not a completion.
-- The clock starts when the tenant reported the defect (repair_requests.reported_at; the work
--   order's raised_at only when no repair request arrived). The target is the configured
--   target for the priority at report time (the repair request's priority, else the work
--   order's), so lowering a priority later does not move it.
-- Numerator: completed no later than reported_at + target hours.
-- Emergency: priority codes configured as emergency ([analytics] emergency_priorities).
-- A priority with no configured target counts in the denominator and never within target.
WITH work_order AS (
    SELECT ref, repair_request_ref, priority, raised_at, work_class FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS latest FROM work_orders
    ) WHERE latest = 1
),
request AS (
    SELECT ref, reported_at, priority FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS latest FROM repair_requests
    ) WHERE latest = 1
),
status AS (
    SELECT ref,
        MAX(CASE WHEN status = 'completed' THEN status_at END) AS completed_at,
        MAX(CASE WHEN status = 'cancelled' THEN status_at END) AS cancelled_at
    FROM work_order_updates GROUP BY ref
),
completed AS (
    SELECT
        COALESCE(t.emergency, false) AS emergency,
        CASE WHEN t.target_hours IS NOT NULL
              AND to_unixtime(s.completed_at) - to_unixtime(COALESCE(r.reported_at, w.raised_at)) <= t.target_hours * 3600
             THEN 1 ELSE 0 END AS within_target
    FROM work_order w
    JOIN status s ON s.ref = w.ref
    LEFT JOIN request r ON r.ref = w.repair_request_ref
    LEFT JOIN repair_targets t ON t.priority = COALESCE(r.priority, w.priority)
    WHERE s.completed_at IS NOT NULL AND s.cancelled_at IS NULL
      AND COALESCE(w.work_class, 'responsive') = 'responsive'
      AND CAST(s.completed_at AS DATE) BETWEEN $from AND $to
),
counts AS (
    SELECT
        CAST(COALESCE(SUM(CASE WHEN emergency THEN within_target ELSE 0 END), 0) AS DOUBLE) AS emergency_within,
        CAST(COALESCE(SUM(CASE WHEN emergency THEN 1 ELSE 0 END), 0) AS DOUBLE) AS emergency_total,
        CAST(COALESCE(SUM(CASE WHEN NOT emergency THEN within_target ELSE 0 END), 0) AS DOUBLE) AS other_within,
        CAST(COALESCE(SUM(CASE WHEN NOT emergency THEN 1 ELSE 0 END), 0) AS DOUBLE) AS other_total
    FROM completed
)
SELECT 1 AS ordinal, 'rp02_emergency_pct' AS kpi, 100 * emergency_within / NULLIF(emergency_total, 0) AS value,
       emergency_within AS numerator, emergency_total AS denominator FROM counts
UNION ALL SELECT 2 AS ordinal, 'rp02_non_emergency_pct' AS kpi, 100 * other_within / NULLIF(other_total, 0) AS value, other_within AS numerator, other_total AS denominator FROM counts
