-- Housemark HMPI 90: average end-to-end time of responsive repairs, in calendar days.
-- Source: Housemark HMPI 90 definition; DOMAIN.md §4.
--
-- Repairs: responsive work orders (void and planned excluded) completed between $from and
--   $to (inclusive, by completion date), not cancelled.
-- Days: from the date the tenant reported the defect (the work order's raised date when no
--   repair request arrived) to the completion date, counting both the first and last day
--   (reported and completed the same day = 1 day).
WITH work_order AS (
    SELECT ref, repair_request_ref, raised_at, work_class FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS latest FROM work_orders
    ) WHERE latest = 1
),
request AS (
    SELECT ref, reported_at FROM (
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
    SELECT CAST(
        (to_unixtime(date_trunc('day', s.completed_at))
         - to_unixtime(date_trunc('day', COALESCE(r.reported_at, w.raised_at)))) / 86400 + 1
        AS DOUBLE) AS days
    FROM work_order w
    JOIN status s ON s.ref = w.ref
    LEFT JOIN request r ON r.ref = w.repair_request_ref
    WHERE s.completed_at IS NOT NULL AND s.cancelled_at IS NULL
      AND COALESCE(w.work_class, 'responsive') = 'responsive'
      AND CAST(s.completed_at AS DATE) BETWEEN $from AND $to
)
SELECT 1 AS ordinal, 'hmpi90_avg_end_to_end_days' AS kpi, AVG(days) AS value,
       SUM(days) AS numerator, CAST(COUNT(*) AS DOUBLE) AS denominator
FROM completed
