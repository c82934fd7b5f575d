-- Missed-appointment wastage: what appointments that did not go ahead cost.
-- Source: DOMAIN.md §4 (Housing Ombudsman: wastage analysis on missed appointments). Unit
-- Reference (population, clock, choices): docs/kpis.md.
-- costs are configuration: [analytics] no_access_cost_gbp (per wasted trip),
-- landlord_missed_compensation_gbp, rebooking_cost_gbp.
--
-- Period: appointments whose slot date is between $from and $to (inclusive), latest outcome.
-- Failed appointment: latest outcome no_access, aborted, missed or cancelled.
-- wasted_trips                     = no_access + aborted (an operative went and could not work)
-- wasted_trip_cost_gbp             = wasted_trips * $no_access_cost
-- landlord_missed_compensation_gbp = missed * $landlord_missed_compensation
-- rebooked_appointments            = failed appointments followed by another appointment for
--                                    the same work order (next by slot date, window, reference)
-- rebooking_cost_gbp               = rebooked_appointments * $rebooking_cost
-- delay_days_added                 = sum over rebooked appointments of the days from the failed
--                                    slot to the next one
-- wastage_total_gbp                = trip cost + compensation + rebooking cost
WITH failed AS (
    SELECT
        CASE WHEN outcome IN ('no_access', 'aborted') THEN appointments ELSE 0 END AS wasted_trip,
        CASE WHEN outcome = 'missed' THEN appointments ELSE 0 END AS landlord_missed,
        rebooked, delay_days
    FROM appointment_days
    WHERE slot_date BETWEEN $from AND $to
      AND outcome IN ('no_access', 'aborted', 'missed', 'cancelled')
),
counts AS (
    SELECT
        CAST(COALESCE(SUM(wasted_trip), 0) AS DOUBLE) AS trips,
        CAST(COALESCE(SUM(landlord_missed), 0) AS DOUBLE) AS missed,
        CAST(COALESCE(SUM(rebooked), 0) AS DOUBLE) AS rebooked,
        CAST(COALESCE(SUM(delay_days), 0) AS DOUBLE) AS delay_days
    FROM failed
)
-- One row per KPI: the counts are computed once and spread over the rows (a UNION of
-- SELECTs from the same CTE would compute it once per branch).
SELECT k.ordinal AS ordinal, k.kpi AS kpi, CAST(NULL AS VARCHAR) AS key,
    CASE k.kpi
        WHEN 'wasted_trips' THEN trips
        WHEN 'wasted_trip_cost_gbp' THEN trips * $no_access_cost
        WHEN 'landlord_missed_compensation_gbp' THEN missed * $landlord_missed_compensation
        WHEN 'rebooked_appointments' THEN rebooked
        WHEN 'rebooking_cost_gbp' THEN rebooked * $rebooking_cost
        WHEN 'delay_days_added' THEN delay_days
        WHEN 'wastage_total_gbp' THEN trips * $no_access_cost + missed * $landlord_missed_compensation + rebooked * $rebooking_cost
    END AS value,
    CASE k.kpi
        WHEN 'wasted_trips' THEN trips
        WHEN 'wasted_trip_cost_gbp' THEN trips
        WHEN 'landlord_missed_compensation_gbp' THEN missed
        WHEN 'rebooked_appointments' THEN rebooked
        WHEN 'rebooking_cost_gbp' THEN rebooked
        WHEN 'delay_days_added' THEN delay_days
        WHEN 'wastage_total_gbp' THEN CAST(NULL AS DOUBLE)
    END AS numerator,
    CASE k.kpi
        WHEN 'wasted_trips' THEN CAST(NULL AS DOUBLE)
        WHEN 'wasted_trip_cost_gbp' THEN CAST(NULL AS DOUBLE)
        WHEN 'landlord_missed_compensation_gbp' THEN CAST(NULL AS DOUBLE)
        WHEN 'rebooked_appointments' THEN CAST(NULL AS DOUBLE)
        WHEN 'rebooking_cost_gbp' THEN CAST(NULL AS DOUBLE)
        WHEN 'delay_days_added' THEN rebooked
        WHEN 'wastage_total_gbp' THEN CAST(NULL AS DOUBLE)
    END AS denominator
FROM counts CROSS JOIN (VALUES
    (1, 'wasted_trips'),
    (2, 'wasted_trip_cost_gbp'),
    (3, 'landlord_missed_compensation_gbp'),
    (4, 'rebooked_appointments'),
    (5, 'rebooking_cost_gbp'),
    (6, 'delay_days_added'),
    (7, 'wastage_total_gbp')
) AS k(ordinal, kpi)
