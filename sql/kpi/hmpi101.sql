-- Housemark HMPI 101: first-visit fix.
-- Source: Housemark HMPI 101 definition; DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
--
-- Repairs: responsive work orders completed between $from and $to (inclusive, by completion
--   date), not cancelled (the HMPI 90 population).
-- First visit: the earliest appointment (slot date, window start, then reference) at which an
--   operative attended and worked: outcome kept_completed, kept_not_completed or aborted. A
--   resident no-access is not a visit, nor are missed or cancelled appointments. (The data
--   carries no pre-inspection marker; pre-inspection appointments, where a source has them,
--   would have to be excluded by mapping them to their own work orders.)
-- Numerator: repairs whose first visit was kept_completed.
-- first_visit_fix_pct = 100 * numerator / repairs.
WITH counts AS (
    SELECT CAST(COALESCE(SUM(repairs), 0) AS DOUBLE) AS repairs,
        CAST(COALESCE(SUM(CASE WHEN first_visit_outcome = 'kept_completed' THEN repairs ELSE 0 END), 0) AS DOUBLE) AS fixed
    FROM repair_days
    WHERE work_class = 'responsive' AND completed_on BETWEEN $from AND $to
)
SELECT 1 AS ordinal, 'hmpi101_first_visit_fix_pct' AS kpi, CAST(NULL AS VARCHAR) AS key,
       100 * fixed / NULLIF(repairs, 0) AS value, fixed AS numerator, repairs AS denominator
FROM counts
