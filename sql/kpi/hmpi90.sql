-- Housemark HMPI 90: average end-to-end time of responsive repairs, in calendar days.
-- Source: Housemark HMPI 90 definition; DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
--
-- Repairs: responsive work orders (void and planned excluded) completed between $from and
--   $to (inclusive, by completion date), not cancelled.
-- Days: from the day the tenant reported the defect (the work order's raised day when no
--   repair request arrived) to the completion day, counting both the first and last day
--   (reported and completed the same day = 1 day).
WITH completed AS (
    SELECT days, repairs FROM repair_days
    WHERE work_class = 'responsive' AND completed_on BETWEEN $from AND $to
)
SELECT 1 AS ordinal, 'hmpi90_avg_end_to_end_days' AS kpi, CAST(NULL AS VARCHAR) AS key,
       SUM(days * repairs) / SUM(repairs) AS value, COALESCE(SUM(days * repairs), 0) AS numerator,
       CAST(COALESCE(SUM(repairs), 0) AS DOUBLE) AS denominator
FROM completed
