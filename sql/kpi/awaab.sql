-- Awaab's Law step compliance (in force 27 October 2025 for damp and mould and emergency
-- hazards in social housing).
-- Source: The Hazards in Social Housing (Prescribed Requirements) (England) Regulations 2025;
-- DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
--
-- The clock starts when the landlord becomes aware: the tenant's report (reported_at, else
-- the work order's raised_at). Hazards, as the data can show them ([analytics.awaab]):
--   emergency hazard  = a repair whose priority at report time is in awaab.emergency_priorities;
--   significant hazard = a repair whose trade is in awaab.significant_hazard_trades.
-- Population: such responsive repairs reported between $from and $to (inclusive), not
--   cancelled, whose deadline has passed by $as_of or whose step is done (a step still in time
--   is not judged yet).
-- awaab_emergency_made_safe_24h_pct   = made safe (completed) within 24 hours of the clock start
-- awaab_significant_investigated_pct  = first attended visit (kept_completed, kept_not_completed,
--                                       aborted) by the end of the 10th working day after the
--                                       report day
-- awaab_significant_safety_works_pct  = of those investigated, completed by the end of the 5th
--                                       working day after the investigation day
-- Working days skip weekends and England and Wales bank holidays (the `calendar` table).
-- Not measured: the written summary within 3 working days of the investigation (no source
-- system here records it).
WITH hazard AS (
    SELECT * FROM hazard_days WHERE reported_on BETWEEN $from AND $to
),
emergency AS (
    SELECT repairs,
        CASE WHEN made_safe_24h THEN 1 ELSE 0 END AS met,
        CASE WHEN completed_on IS NOT NULL
              OR date_part('epoch', $as_of) - date_part('epoch', open_since) > 86400 THEN 1 ELSE 0 END AS judged
    FROM hazard WHERE emergency
),
significant AS (
    SELECT h.repairs, h.completed_on, h.investigated_on, deadline.day AS investigate_by
    FROM hazard h
    JOIN calendar reported ON reported.day = h.reported_on
    JOIN calendar deadline ON deadline.working_day
        AND deadline.working_day_number = reported.working_day_number + 10
    WHERE h.significant
),
investigation AS (
    SELECT repairs,
        CASE WHEN investigated_on IS NOT NULL AND investigated_on <= investigate_by THEN 1 ELSE 0 END AS met,
        CASE WHEN investigated_on IS NOT NULL OR CAST($as_of AS DATE) > investigate_by THEN 1 ELSE 0 END AS judged
    FROM significant
),
safety_works AS (
    SELECT s.repairs,
        CASE WHEN s.completed_on IS NOT NULL AND s.completed_on <= deadline.day THEN 1 ELSE 0 END AS met,
        CASE WHEN s.completed_on IS NOT NULL OR CAST($as_of AS DATE) > deadline.day THEN 1 ELSE 0 END AS judged
    FROM significant s
    JOIN calendar investigated ON investigated.day = s.investigated_on
    JOIN calendar deadline ON deadline.working_day
        AND deadline.working_day_number = investigated.working_day_number + 5
),
counts AS (
    SELECT 1 AS ordinal, 'awaab_emergency_made_safe_24h_pct' AS kpi,
        CAST(COALESCE(SUM(met * judged * repairs), 0) AS DOUBLE) AS met,
        CAST(COALESCE(SUM(judged * repairs), 0) AS DOUBLE) AS judged
    FROM emergency
    UNION ALL SELECT 2 AS ordinal, 'awaab_significant_investigated_pct' AS kpi,
        CAST(COALESCE(SUM(met * judged * repairs), 0) AS DOUBLE) AS met,
        CAST(COALESCE(SUM(judged * repairs), 0) AS DOUBLE) AS judged
    FROM investigation
    UNION ALL SELECT 3 AS ordinal, 'awaab_significant_safety_works_pct' AS kpi,
        CAST(COALESCE(SUM(met * judged * repairs), 0) AS DOUBLE) AS met,
        CAST(COALESCE(SUM(judged * repairs), 0) AS DOUBLE) AS judged
    FROM safety_works
)
SELECT ordinal, kpi, CAST(NULL AS VARCHAR) AS key, 100 * met / NULLIF(judged, 0) AS value,
       met AS numerator, judged AS denominator
FROM counts
