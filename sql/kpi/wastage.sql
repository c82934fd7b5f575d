-- Missed-appointment wastage: what wasted trips and landlord misses cost.
-- Source: DOMAIN.md §4 (Housing Ombudsman: wastage analysis on missed appointments; unit
-- costs are configuration: [analytics] no_access_cost_gbp, landlord_missed_compensation_gbp).
--
-- Period: appointments whose slot date is between $from and $to (inclusive), latest outcome.
-- no_access_wasted_trips           = appointments with outcome no_access (an operative went).
-- no_access_wastage_gbp            = no_access_wasted_trips * $no_access_cost
-- landlord_missed_compensation_gbp = appointments with outcome missed * $landlord_missed_compensation
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
counts AS (
    SELECT
        CAST(COALESCE(SUM(CASE WHEN o.outcome = 'no_access' THEN 1 ELSE 0 END), 0) AS DOUBLE) AS no_access,
        CAST(COALESCE(SUM(CASE WHEN o.outcome = 'missed' THEN 1 ELSE 0 END), 0) AS DOUBLE) AS missed
    FROM appointment a JOIN outcome o ON o.ref = a.ref
    WHERE a.slot_date BETWEEN $from AND $to
)
SELECT 1 AS ordinal, 'no_access_wasted_trips' AS kpi, no_access AS value, no_access AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 2 AS ordinal, 'no_access_wastage_gbp' AS kpi, no_access * $no_access_cost AS value, no_access AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
UNION ALL SELECT 3 AS ordinal, 'landlord_missed_compensation_gbp' AS kpi, missed * $landlord_missed_compensation AS value, missed AS numerator, CAST(NULL AS DOUBLE) AS denominator FROM counts
