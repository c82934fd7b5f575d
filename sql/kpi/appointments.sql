-- Appointments made, kept, no-access and landlord-missed, with their rates.
-- Source: DOMAIN.md §4 (Housemark / Housing Ombudsman appointment measures).
--
-- Period: appointments whose slot date is between $from and $to (inclusive).
-- made            = appointments in the period, except those cancelled before the slot
--                   (latest visit outcome `cancelled`); appointments with no outcome yet count.
-- kept            = made that the landlord kept: the operative attended (latest outcome
--                   kept_completed, kept_not_completed, aborted, or no_access: a resident
--                   not at home does not make the landlord miss the appointment).
-- no_access       = made whose latest outcome is no_access (resident not in).
-- landlord_missed = made whose latest outcome is missed (landlord or contractor did not attend).
-- appointments_kept_pct            = 100 * kept / made
-- no_access_rate_pct               = 100 * no_access / attended visits (= kept)
-- landlord_missed_rate_pct         = 100 * landlord_missed / made
WITH appointment AS (
    SELECT ref, slot_date FROM (
        SELECT ref, slot_date, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS latest
        FROM appointments
    ) WHERE latest = 1
),
outcome AS (
    SELECT ref, outcome FROM (
        SELECT ref, outcome, ROW_NUMBER() OVER (PARTITION BY ref ORDER BY seq DESC) AS latest
        FROM visits
    ) WHERE latest = 1
),
made AS (
    SELECT a.ref, o.outcome
    FROM appointment a LEFT JOIN outcome o ON o.ref = a.ref
    WHERE a.slot_date BETWEEN $from AND $to
      AND (o.outcome IS NULL OR o.outcome <> 'cancelled')
),
counts AS (
    SELECT
        CAST(COUNT(*) AS DOUBLE) AS made,
        CAST(COALESCE(SUM(CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN 1 ELSE 0 END), 0) AS DOUBLE) AS kept,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'no_access' THEN 1 ELSE 0 END), 0) AS DOUBLE) AS no_access,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'missed' THEN 1 ELSE 0 END), 0) AS DOUBLE) AS missed
    FROM made
)
SELECT 1 AS ordinal, 'appointments_made' AS kpi, made AS value, made AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 2 AS ordinal, 'appointments_kept' AS kpi, kept AS value, kept AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 3 AS ordinal, 'appointments_no_access' AS kpi, no_access AS value, no_access AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 4 AS ordinal, 'appointments_landlord_missed' AS kpi, missed AS value, missed AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 5 AS ordinal, 'appointments_kept_pct' AS kpi, 100 * kept / NULLIF(made, 0) AS value, kept AS numerator, made AS denominator FROM counts
UNION ALL SELECT 6 AS ordinal, 'no_access_rate_pct' AS kpi, 100 * no_access / NULLIF(kept, 0) AS value, no_access AS numerator, kept AS denominator FROM counts
UNION ALL SELECT 7 AS ordinal, 'landlord_missed_rate_pct' AS kpi, 100 * missed / NULLIF(made, 0) AS value, missed AS numerator, made AS denominator FROM counts
