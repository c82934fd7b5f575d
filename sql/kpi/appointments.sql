-- Appointments made, kept, no-access and landlord-missed, with their rates.
-- Source: DOMAIN.md §4 (Housemark / Housing Ombudsman appointment measures).
-- Reference (population, clock, choices): docs/kpis.md.
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
    SELECT outcome, evidenced, appointments FROM appointment_days
    WHERE slot_date BETWEEN $from AND $to
      AND (outcome IS NULL OR outcome <> 'cancelled')
),
counts AS (
    SELECT
        CAST(COALESCE(SUM(appointments), 0) AS DOUBLE) AS made,
        CAST(COALESCE(SUM(CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN appointments ELSE 0 END), 0) AS DOUBLE) AS kept,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'no_access' THEN appointments ELSE 0 END), 0) AS DOUBLE) AS no_access,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'no_access' AND NOT evidenced THEN appointments ELSE 0 END), 0) AS DOUBLE) AS unverified,
        CAST(COALESCE(SUM(CASE WHEN outcome = 'missed' THEN appointments ELSE 0 END), 0) AS DOUBLE) AS missed
    FROM made
),
orders AS (
    SELECT CAST(COALESCE(SUM(orders), 0) AS DOUBLE) AS raised,
        CAST(COALESCE(SUM(CASE WHEN booked THEN orders ELSE 0 END), 0) AS DOUBLE) AS with_appointment
    FROM order_days
    WHERE raised_on BETWEEN $from AND $to AND NOT cancelled
)
-- One row per KPI: the counts are computed once and spread over the rows (a UNION of
-- SELECTs from the same CTE would compute it once per branch).
SELECT k.ordinal AS ordinal, k.kpi AS kpi, CAST(NULL AS VARCHAR) AS key,
    CASE k.kpi
        WHEN 'appointments_made' THEN made
        WHEN 'appointments_kept' THEN kept
        WHEN 'appointments_no_access' THEN no_access
        WHEN 'appointments_landlord_missed' THEN missed
        WHEN 'appointments_kept_pct' THEN 100 * kept / NULLIF(made, 0)
        WHEN 'no_access_rate_pct' THEN 100 * no_access / NULLIF(kept, 0)
        WHEN 'unverified_no_access_share_pct' THEN 100 * unverified / NULLIF(no_access, 0)
        WHEN 'landlord_missed_rate_pct' THEN 100 * missed / NULLIF(made, 0)
    END AS value,
    CASE k.kpi
        WHEN 'appointments_made' THEN made
        WHEN 'appointments_kept' THEN kept
        WHEN 'appointments_no_access' THEN no_access
        WHEN 'appointments_landlord_missed' THEN missed
        WHEN 'appointments_kept_pct' THEN kept
        WHEN 'no_access_rate_pct' THEN no_access
        WHEN 'unverified_no_access_share_pct' THEN unverified
        WHEN 'landlord_missed_rate_pct' THEN missed
    END AS numerator,
    CASE k.kpi
        WHEN 'appointments_made' THEN CAST(NULL AS DOUBLE)
        WHEN 'appointments_kept' THEN CAST(NULL AS DOUBLE)
        WHEN 'appointments_no_access' THEN CAST(NULL AS DOUBLE)
        WHEN 'appointments_landlord_missed' THEN CAST(NULL AS DOUBLE)
        WHEN 'appointments_kept_pct' THEN made
        WHEN 'no_access_rate_pct' THEN kept
        WHEN 'unverified_no_access_share_pct' THEN no_access
        WHEN 'landlord_missed_rate_pct' THEN made
    END AS denominator
FROM counts CROSS JOIN (VALUES
    (1, 'appointments_made'),
    (2, 'appointments_kept'),
    (3, 'appointments_no_access'),
    (4, 'appointments_landlord_missed'),
    (5, 'appointments_kept_pct'),
    (7, 'no_access_rate_pct'),
    (8, 'unverified_no_access_share_pct'),
    (9, 'landlord_missed_rate_pct')
) AS k(ordinal, kpi)
UNION ALL
SELECT k.ordinal AS ordinal, k.kpi AS kpi, CAST(NULL AS VARCHAR) AS key,
    100 * with_appointment / NULLIF(raised, 0) AS value,
    with_appointment AS numerator,
    raised AS denominator
FROM orders CROSS JOIN (VALUES
    (6, 'appointments_made_pct_of_repair_orders')
) AS k(ordinal, kpi)
