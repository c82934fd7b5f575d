-- Reminder effect: the no-access rate of appointments with a reminder sent against those
-- without one.
-- Source: DOMAIN.md §4 (Housing Ombudsman: reminders before appointments).
--
-- Period: attended appointments (latest outcome kept_completed, kept_not_completed, aborted
--   or no_access) whose slot date is between $from and $to (inclusive).
-- no_access_rate_reminded_pct     = 100 * no_access / attended, reminder_sent true
-- no_access_rate_not_reminded_pct = 100 * no_access / attended, reminder_sent false or unknown
-- reminder_effect_pp              = not reminded rate - reminded rate (percentage points; positive:
--                                   reminders cut no-access)
WITH attended AS (
    SELECT COALESCE(reminder_sent, false) AS reminded,
        CASE WHEN outcome = 'no_access' THEN 1 ELSE 0 END AS no_access
    FROM appointment_outcomes
    WHERE slot_date BETWEEN $from AND $to
      AND outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access')
),
counts AS (
    SELECT
        CAST(COALESCE(SUM(CASE WHEN reminded THEN no_access ELSE 0 END), 0) AS DOUBLE) AS reminded_no_access,
        CAST(COALESCE(SUM(CASE WHEN reminded THEN 1 ELSE 0 END), 0) AS DOUBLE) AS reminded,
        CAST(COALESCE(SUM(CASE WHEN NOT reminded THEN no_access ELSE 0 END), 0) AS DOUBLE) AS other_no_access,
        CAST(COALESCE(SUM(CASE WHEN NOT reminded THEN 1 ELSE 0 END), 0) AS DOUBLE) AS other
    FROM attended
)
SELECT 1 AS ordinal, 'no_access_rate_reminded_pct' AS kpi, CAST(NULL AS VARCHAR) AS key,
       100 * reminded_no_access / NULLIF(reminded, 0) AS value, reminded_no_access AS numerator, reminded AS denominator FROM counts
UNION ALL SELECT 2 AS ordinal, 'no_access_rate_not_reminded_pct' AS kpi, CAST(NULL AS VARCHAR) AS key,
       100 * other_no_access / NULLIF(other, 0) AS value, other_no_access AS numerator, other AS denominator FROM counts
UNION ALL SELECT 3 AS ordinal, 'reminder_effect_pp' AS kpi, CAST(NULL AS VARCHAR) AS key,
       100 * other_no_access / NULLIF(other, 0) - 100 * reminded_no_access / NULLIF(reminded, 0) AS value,
       CAST(NULL AS DOUBLE) AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
