-- Awaab's Law step compliance (in force 27 October 2025 for damp and mould and emergency
-- hazards in social housing).
-- Source: The Hazards in Social Housing (Prescribed Requirements) (England) Regulations 2025;
-- DOMAIN.md §4.
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
    SELECT r.ref, r.clock_start, r.completed_at, r.trade,
        COALESCE(t.awaab_emergency, false) AS emergency,
        CASE WHEN h.trade IS NOT NULL THEN true ELSE false END AS significant
    FROM repairs r
    LEFT JOIN repair_targets t ON t.priority = r.priority
    LEFT JOIN hazard_trades h ON h.trade = r.trade
    WHERE r.cancelled_at IS NULL AND r.work_class = 'responsive'
      AND CAST(r.clock_start AS DATE) BETWEEN $from AND $to
),
first_visit AS (
    SELECT work_order_ref, arrived_at, slot_date FROM (
        SELECT work_order_ref, arrived_at, slot_date,
            ROW_NUMBER() OVER (PARTITION BY work_order_ref ORDER BY slot_date, window_start, ref) AS visit
        FROM appointment_outcomes
        WHERE outcome IN ('kept_completed', 'kept_not_completed', 'aborted')
    ) visits WHERE visit = 1
),
emergency AS (
    SELECT
        CASE WHEN completed_at IS NOT NULL
              AND date_part('epoch', completed_at) - date_part('epoch', clock_start) <= 86400 THEN 1 ELSE 0 END AS met,
        CASE WHEN completed_at IS NOT NULL
              OR date_part('epoch', $as_of) - date_part('epoch', clock_start) > 86400 THEN 1 ELSE 0 END AS judged
    FROM hazard WHERE emergency
),
significant AS (
    SELECT h.ref, h.completed_at,
        COALESCE(CAST(f.arrived_at AS DATE), f.slot_date) AS investigated_on,
        deadline.day AS investigate_by
    FROM hazard h
    LEFT JOIN first_visit f ON f.work_order_ref = h.ref
    JOIN calendar reported ON reported.day = CAST(h.clock_start AS DATE)
    JOIN calendar deadline ON deadline.working_day
        AND deadline.working_day_number = reported.working_day_number + 10
    WHERE h.significant
),
investigation AS (
    SELECT
        CASE WHEN investigated_on IS NOT NULL AND investigated_on <= investigate_by THEN 1 ELSE 0 END AS met,
        CASE WHEN investigated_on IS NOT NULL OR CAST($as_of AS DATE) > investigate_by THEN 1 ELSE 0 END AS judged
    FROM significant
),
safety_works AS (
    SELECT
        CASE WHEN s.completed_at IS NOT NULL AND CAST(s.completed_at AS DATE) <= deadline.day THEN 1 ELSE 0 END AS met,
        CASE WHEN s.completed_at IS NOT NULL OR CAST($as_of AS DATE) > deadline.day THEN 1 ELSE 0 END AS judged
    FROM significant s
    JOIN calendar investigated ON investigated.day = s.investigated_on
    JOIN calendar deadline ON deadline.working_day
        AND deadline.working_day_number = investigated.working_day_number + 5
),
counts AS (
    SELECT 1 AS ordinal, 'awaab_emergency_made_safe_24h_pct' AS kpi,
        CAST(COALESCE(SUM(met * judged), 0) AS DOUBLE) AS met, CAST(COALESCE(SUM(judged), 0) AS DOUBLE) AS judged
    FROM emergency
    UNION ALL SELECT 2 AS ordinal, 'awaab_significant_investigated_pct' AS kpi,
        CAST(COALESCE(SUM(met * judged), 0) AS DOUBLE) AS met, CAST(COALESCE(SUM(judged), 0) AS DOUBLE) AS judged
    FROM investigation
    UNION ALL SELECT 3 AS ordinal, 'awaab_significant_safety_works_pct' AS kpi,
        CAST(COALESCE(SUM(met * judged), 0) AS DOUBLE) AS met, CAST(COALESCE(SUM(judged), 0) AS DOUBLE) AS judged
    FROM safety_works
)
SELECT ordinal, kpi, CAST(NULL AS VARCHAR) AS key, 100 * met / NULLIF(judged, 0) AS value,
       met AS numerator, judged AS denominator
FROM counts
