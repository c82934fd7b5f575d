-- Appointments made, kept, no-access and landlord-missed, with their rates.
-- Source: DOMAIN.md §4 (Housemark / Housing Ombudsman appointment measures).
--
-- Period: appointments whose slot date is between $from and $to (inclusive).
-- made             = appointments in the period, except those cancelled before the slot
--                    (latest outcome `cancelled`); appointments with no outcome yet count.
-- kept             = made that the landlord kept: the operative attended (latest outcome
--                    kept_completed, kept_not_completed, aborted, or no_access: a resident
--                    not at home does not make the landlord miss the appointment).
-- no_access        = made whose latest outcome is no_access (resident not in).
-- landlord_missed  = made whose latest outcome is missed (landlord or contractor did not attend).
-- appointments_kept_pct          = 100 * kept / made
-- no_access_rate_pct             = 100 * no_access / attended visits (= kept)
-- unverified_no_access_share_pct = 100 * no-access without the evidence (arrival inside the
--                                  slot, a contact attempt and a card left) / no_access
-- landlord_missed_rate_pct       = 100 * landlord_missed / made
-- appointments_made_pct_of_repair_orders = 100 * work orders raised in the period (by raised
--                                  date, not cancelled) with at least one appointment made
--                                  (any slot date, not cancelled) / those work orders
WITH made AS (
    SELECT outcome, evidenced FROM appointment_outcomes
    WHERE slot_date BETWEEN $from AND $to
      AND (outcome IS NULL OR outcome <> 'cancelled')
),
counts AS (
    SELECT
        CAST(COUNT(*) AS DOUBLE) AS made,
        CAST(COALESCE(SUM(CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN 1 ELSE 0 END), 0) AS DOUBLE) AS kept,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'no_access' THEN 1 ELSE 0 END), 0) AS DOUBLE) AS no_access,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'no_access' AND NOT evidenced THEN 1 ELSE 0 END), 0) AS DOUBLE) AS unverified,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'missed' THEN 1 ELSE 0 END), 0) AS DOUBLE) AS missed
    FROM made
),
orders AS (
    SELECT CAST(COUNT(*) AS DOUBLE) AS raised,
        CAST(COALESCE(SUM(CASE WHEN booked.work_order_ref IS NOT NULL THEN 1 ELSE 0 END), 0) AS DOUBLE) AS with_appointment
    FROM repairs r
    LEFT JOIN (
        SELECT DISTINCT work_order_ref FROM appointment_outcomes
        WHERE outcome IS NULL OR outcome <> 'cancelled'
    ) booked ON booked.work_order_ref = r.ref
    WHERE CAST(r.raised_at AS DATE) BETWEEN $from AND $to AND r.cancelled_at IS NULL
)
SELECT 1 AS ordinal, 'appointments_made' AS kpi, CAST(NULL AS VARCHAR) AS key, made AS value, made AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 2 AS ordinal, 'appointments_kept' AS kpi, CAST(NULL AS VARCHAR) AS key, kept AS value, kept AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 3 AS ordinal, 'appointments_no_access' AS kpi, CAST(NULL AS VARCHAR) AS key, no_access AS value, no_access AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 4 AS ordinal, 'appointments_landlord_missed' AS kpi, CAST(NULL AS VARCHAR) AS key, missed AS value, missed AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 5 AS ordinal, 'appointments_kept_pct' AS kpi, CAST(NULL AS VARCHAR) AS key, 100 * kept / NULLIF(made, 0) AS value, kept AS numerator, made AS denominator FROM counts
UNION ALL SELECT 6 AS ordinal, 'appointments_made_pct_of_repair_orders' AS kpi, CAST(NULL AS VARCHAR) AS key, 100 * with_appointment / NULLIF(raised, 0) AS value, with_appointment AS numerator, raised AS denominator FROM orders
UNION ALL SELECT 7 AS ordinal, 'no_access_rate_pct' AS kpi, CAST(NULL AS VARCHAR) AS key, 100 * no_access / NULLIF(kept, 0) AS value, no_access AS numerator, kept AS denominator FROM counts
UNION ALL SELECT 8 AS ordinal, 'unverified_no_access_share_pct' AS kpi, CAST(NULL AS VARCHAR) AS key, 100 * unverified / NULLIF(no_access, 0) AS value, unverified AS numerator, no_access AS denominator FROM counts
UNION ALL SELECT 9 AS ordinal, 'landlord_missed_rate_pct' AS kpi, CAST(NULL AS VARCHAR) AS key, 100 * missed / NULLIF(made, 0) AS value, missed AS numerator, made AS denominator FROM counts
