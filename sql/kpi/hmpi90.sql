-- Housemark HMPI 90: average end-to-end time of responsive repairs, in calendar days.
-- Source: Housemark HMPI 90 definition; DOMAIN.md §4.
--
-- Repairs: responsive work orders (void and planned excluded) completed between $from and
--   $to (inclusive, by completion date), not cancelled.
-- Days: from the day the tenant reported the defect (the work order's raised day when no
--   repair request arrived) to the completion day, counting both the first and last day
--   (reported and completed the same day = 1 day).
WITH completed AS (
    SELECT CAST(
        (date_part('epoch', date_trunc('day', completed_at))
         - date_part('epoch', date_trunc('day', clock_start))) / 86400 + 1 AS DOUBLE) AS days
    FROM repairs
    WHERE completed_at IS NOT NULL AND cancelled_at IS NULL
      AND work_class = 'responsive'
      AND CAST(completed_at AS DATE) BETWEEN $from AND $to
)
SELECT 1 AS ordinal, 'hmpi90_avg_end_to_end_days' AS kpi, CAST(NULL AS VARCHAR) AS key,
       AVG(days) AS value, COALESCE(SUM(days), 0) AS numerator, CAST(COUNT(*) AS DOUBLE) AS denominator
FROM completed
