-- TSM RP02: % of responsive repairs completed within the landlord's target timescale,
-- emergency and non-emergency separately.
-- Source: Regulator of Social Housing, Tenant Satisfaction Measures, technical requirements
-- (RP02); DOMAIN.md §4.
--
-- Denominator: responsive work orders (work_class responsive or unset; void and planned work
--   excluded) to occupied homes (a tenancy in force at the property on the report day,
--   every home counts when no tenancy is known at all) completed between $from and $to
--   (inclusive, by completion date); a work order with a cancellation is not a completion.
--   A responsive repair to a void home is left out here and flagged by the exception
--   `responsive_repair_on_void_property`. See docs/kpis.md.
-- Clock: starts when the tenant reported the defect (the repair request's reported_at; the
--   work order's raised_at only when no repair request arrived).
-- Target: [analytics.targets] for the priority at report time (the repair request's
--   priority, else the work order's as first raised): hours, calendar days or working days (England and
--   Wales bank holidays), fixed when the report arrives, so lowering a priority later does
--   not move it (`due_at`).
-- Numerator: completed no later than the target.
-- Emergency: the priority codes in analytics.emergency_priorities.
-- A priority with no configured target counts in the denominator and never within target.
WITH completed AS (
    SELECT COALESCE(t.emergency, false) AS emergency, d.repairs,
        CASE WHEN d.within_target THEN d.repairs ELSE 0 END AS within_target
    FROM repair_days d
    LEFT JOIN repair_targets t ON t.priority = d.priority
    WHERE d.work_class = 'responsive' AND COALESCE(d.occupied, true)
      AND d.completed_on BETWEEN $from AND $to
),
counts AS (
    SELECT
        CAST(COALESCE(SUM(CASE WHEN emergency THEN within_target ELSE 0 END), 0) AS DOUBLE) AS emergency_within,
        CAST(COALESCE(SUM(CASE WHEN emergency THEN repairs ELSE 0 END), 0) AS DOUBLE) AS emergency_total,
        CAST(COALESCE(SUM(CASE WHEN NOT emergency THEN within_target ELSE 0 END), 0) AS DOUBLE) AS other_within,
        CAST(COALESCE(SUM(CASE WHEN NOT emergency THEN repairs ELSE 0 END), 0) AS DOUBLE) AS other_total
    FROM completed
)
-- One row per KPI: the counts are computed once and spread over the rows (a UNION of
-- SELECTs from the same CTE would compute it once per branch).
SELECT k.ordinal AS ordinal, k.kpi AS kpi, CAST(NULL AS VARCHAR) AS key,
    CASE k.kpi
        WHEN 'rp02_emergency_pct' THEN 100 * emergency_within / NULLIF(emergency_total, 0)
        WHEN 'rp02_non_emergency_pct' THEN 100 * other_within / NULLIF(other_total, 0)
    END AS value,
    CASE k.kpi
        WHEN 'rp02_emergency_pct' THEN emergency_within
        WHEN 'rp02_non_emergency_pct' THEN other_within
    END AS numerator,
    CASE k.kpi
        WHEN 'rp02_emergency_pct' THEN emergency_total
        WHEN 'rp02_non_emergency_pct' THEN other_total
    END AS denominator
FROM counts CROSS JOIN (VALUES
    (1, 'rp02_emergency_pct'),
    (2, 'rp02_non_emergency_pct')
) AS k(ordinal, kpi)
