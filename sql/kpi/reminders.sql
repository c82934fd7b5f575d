-- Reminder effect: the no-access rate of appointments with a reminder sent against those
-- without one.
-- Source: DOMAIN.md §4 (Housing Ombudsman: reminders before appointments).
-- Reference (population, clock, choices): docs/kpis.md.
--
-- Period: attended appointments (latest outcome kept_completed, kept_not_completed, aborted
--   or no_access) whose slot date is between $from and $to (inclusive).
-- no_access_rate_reminded_pct     = 100 * no_access / attended, reminder_sent true
-- no_access_rate_not_reminded_pct = 100 * no_access / attended, reminder_sent false or unknown
-- reminder_effect_pp              = not reminded rate - reminded rate (percentage points; positive:
--                                   reminders cut no-access)
WITH attended AS (
    SELECT reminded, appointments,
        CASE WHEN outcome = 'no_access' THEN appointments ELSE 0 END AS no_access
    FROM appointment_days
    WHERE slot_date BETWEEN $from AND $to
      AND outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access')
),
counts AS (
    SELECT
        CAST(COALESCE(SUM(CASE WHEN reminded THEN no_access ELSE 0 END), 0) AS DOUBLE) AS reminded_no_access,
        CAST(COALESCE(SUM(CASE WHEN reminded THEN appointments ELSE 0 END), 0) AS DOUBLE) AS reminded,
        CAST(COALESCE(SUM(CASE WHEN NOT reminded THEN no_access ELSE 0 END), 0) AS DOUBLE) AS other_no_access,
        CAST(COALESCE(SUM(CASE WHEN NOT reminded THEN appointments ELSE 0 END), 0) AS DOUBLE) AS other
    FROM attended
)
-- One row per KPI: the counts are computed once and spread over the rows (a UNION of
-- SELECTs from the same CTE would compute it once per branch).
SELECT k.ordinal AS ordinal, k.kpi AS kpi, CAST(NULL AS VARCHAR) AS key,
    CASE k.kpi
        WHEN 'no_access_rate_reminded_pct' THEN 100 * reminded_no_access / NULLIF(reminded, 0)
        WHEN 'no_access_rate_not_reminded_pct' THEN 100 * other_no_access / NULLIF(other, 0)
        WHEN 'reminder_effect_pp' THEN 100 * other_no_access / NULLIF(other, 0) - 100 * reminded_no_access / NULLIF(reminded, 0)
    END AS value,
    CASE k.kpi
        WHEN 'no_access_rate_reminded_pct' THEN reminded_no_access
        WHEN 'no_access_rate_not_reminded_pct' THEN other_no_access
        WHEN 'reminder_effect_pp' THEN CAST(NULL AS DOUBLE)
    END AS numerator,
    CASE k.kpi
        WHEN 'no_access_rate_reminded_pct' THEN reminded
        WHEN 'no_access_rate_not_reminded_pct' THEN other
        WHEN 'reminder_effect_pp' THEN CAST(NULL AS DOUBLE)
    END AS denominator
FROM counts CROSS JOIN (VALUES
    (1, 'no_access_rate_reminded_pct'),
    (2, 'no_access_rate_not_reminded_pct'),
    (3, 'reminder_effect_pp')
) AS k(ordinal, kpi)
