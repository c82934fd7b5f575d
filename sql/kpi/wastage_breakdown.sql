-- Wastage broken down, and where no-access happens: the Ombudsman's wastage analysis.
-- Source: DOMAIN.md §4 (Housing Ombudsman: wastage by cause, and "would a broader time range
-- help?"). Costs as in wastage.sql.
--
-- Period: appointments whose slot date is between $from and $to (inclusive), latest outcome.
-- wastage_gbp_by_<dimension> (key = the dimension's value): value = cost of the failed
--   appointments in the group (wasted trip, compensation and rebooking costs as in
--   wastage.sql), numerator = failed appointments, denominator = appointments made in the
--   group (not cancelled ones, unless cancelled is the cause). Dimensions:
--   cause (no_access_verified, no_access_unverified, aborted_on_site, missed_by_<who>,
--   cancelled_by_<who>), attribution, contractor, trade, patch (postcode district of the
--   property), weekday_slot ("Mon am"), slot_width (hours between earliest and latest arrival).
-- no_access_rate_by_weekday_slot / no_access_rate_by_slot_width: value = 100 * no_access /
--   attended (kept_completed, kept_not_completed, aborted, no_access) in the group.
WITH ordered AS (
    SELECT *,
        LEAD(slot_date) OVER (PARTITION BY work_order_ref ORDER BY slot_date, window_start, ref) AS next_slot_date
    FROM appointment_outcomes
),
appointment AS (
    SELECT
        CASE
            WHEN outcome = 'no_access' AND evidenced THEN 'no_access_verified'
            WHEN outcome = 'no_access' THEN 'no_access_unverified'
            WHEN outcome = 'aborted' THEN 'aborted_on_site'
            WHEN outcome = 'missed' THEN 'missed_by_' || COALESCE(attribution, 'unknown')
            WHEN outcome = 'cancelled' THEN 'cancelled_by_' || COALESCE(attribution, 'unknown')
        END AS cause,
        COALESCE(attribution, 'none') AS attribution,
        COALESCE(contractor, 'unknown') AS contractor,
        COALESCE(trade, 'unknown') AS trade,
        patch,
        CASE weekday WHEN 0 THEN 'Sun' WHEN 1 THEN 'Mon' WHEN 2 THEN 'Tue' WHEN 3 THEN 'Wed'
            WHEN 4 THEN 'Thu' WHEN 5 THEN 'Fri' ELSE 'Sat' END || ' ' || slot AS weekday_slot,
        CASE WHEN slot_hours IS NULL THEN 'unknown'
             ELSE CAST(CAST(ROUND(slot_hours) AS BIGINT) AS VARCHAR) || 'h' END AS slot_width,
        CASE WHEN outcome IN ('no_access', 'aborted', 'missed', 'cancelled') THEN 1 ELSE 0 END AS failed,
        CASE WHEN outcome IS NULL OR outcome <> 'cancelled' THEN 1 ELSE 0 END AS made,
        CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN 1 ELSE 0 END AS attended,
        CASE WHEN outcome = 'no_access' THEN 1 ELSE 0 END AS no_access,
        CASE WHEN outcome IN ('no_access', 'aborted') THEN $no_access_cost ELSE 0 END
          + CASE WHEN outcome = 'missed' THEN $landlord_missed_compensation ELSE 0 END
          + CASE WHEN outcome IN ('no_access', 'aborted', 'missed', 'cancelled') AND next_slot_date IS NOT NULL
                 THEN $rebooking_cost ELSE 0 END AS cost
    FROM ordered
    WHERE slot_date BETWEEN $from AND $to
)
SELECT 1 AS ordinal, 'wastage_gbp_by_cause' AS kpi, cause AS key, CAST(SUM(cost) AS DOUBLE) AS value,
       CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(failed) AS DOUBLE) AS denominator
FROM appointment WHERE failed = 1 GROUP BY cause
UNION ALL SELECT 2 AS ordinal, 'wastage_gbp_by_attribution' AS kpi, attribution AS key, CAST(SUM(cost) AS DOUBLE) AS value, CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(failed) AS DOUBLE) AS denominator
FROM appointment WHERE failed = 1 GROUP BY attribution
UNION ALL SELECT 3 AS ordinal, 'wastage_gbp_by_contractor' AS kpi, contractor AS key, CAST(SUM(cost) AS DOUBLE) AS value, CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(made) AS DOUBLE) AS denominator
FROM appointment GROUP BY contractor
UNION ALL SELECT 4 AS ordinal, 'wastage_gbp_by_trade' AS kpi, trade AS key, CAST(SUM(cost) AS DOUBLE) AS value, CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(made) AS DOUBLE) AS denominator
FROM appointment GROUP BY trade
UNION ALL SELECT 5 AS ordinal, 'wastage_gbp_by_patch' AS kpi, patch AS key, CAST(SUM(cost) AS DOUBLE) AS value, CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(made) AS DOUBLE) AS denominator
FROM appointment GROUP BY patch
UNION ALL SELECT 6 AS ordinal, 'wastage_gbp_by_weekday_slot' AS kpi, weekday_slot AS key, CAST(SUM(cost) AS DOUBLE) AS value, CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(made) AS DOUBLE) AS denominator
FROM appointment GROUP BY weekday_slot
UNION ALL SELECT 7 AS ordinal, 'wastage_gbp_by_slot_width' AS kpi, slot_width AS key, CAST(SUM(cost) AS DOUBLE) AS value, CAST(SUM(failed) AS DOUBLE) AS numerator, CAST(SUM(made) AS DOUBLE) AS denominator
FROM appointment GROUP BY slot_width
UNION ALL SELECT 8 AS ordinal, 'no_access_rate_by_weekday_slot' AS kpi, weekday_slot AS key,
       100 * CAST(SUM(no_access) AS DOUBLE) / NULLIF(CAST(SUM(attended) AS DOUBLE), 0) AS value,
       CAST(SUM(no_access) AS DOUBLE) AS numerator, CAST(SUM(attended) AS DOUBLE) AS denominator
FROM appointment GROUP BY weekday_slot
UNION ALL SELECT 9 AS ordinal, 'no_access_rate_by_slot_width' AS kpi, slot_width AS key,
       100 * CAST(SUM(no_access) AS DOUBLE) / NULLIF(CAST(SUM(attended) AS DOUBLE), 0) AS value,
       CAST(SUM(no_access) AS DOUBLE) AS numerator, CAST(SUM(attended) AS DOUBLE) AS denominator
FROM appointment GROUP BY slot_width
