-- Wastage broken down, and where no-access happens: the Ombudsman's wastage analysis.
-- Source: DOMAIN.md §4 (Housing Ombudsman: wastage by cause, and "would a broader time range
-- Reference (population, clock, choices): docs/kpis.md.
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
-- The period's appointments per group first (the days folded together), then the labels.
WITH period AS (
    SELECT outcome, evidenced, attribution, contractor, trade, patch, weekday, slot, slot_hours,
        SUM(appointments) AS appointments, SUM(rebooked) AS rebooked
    FROM appointment_days
    WHERE slot_date BETWEEN $from AND $to
    GROUP BY outcome, evidenced, attribution, contractor, trade, patch, weekday, slot, slot_hours
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
        CASE WHEN outcome IN ('no_access', 'aborted', 'missed', 'cancelled') THEN COALESCE(attribution, 'none') END AS attribution,
        COALESCE(contractor, 'unknown') AS contractor,
        COALESCE(trade, 'unknown') AS trade,
        patch,
        CASE weekday WHEN 0 THEN 'Sun' WHEN 1 THEN 'Mon' WHEN 2 THEN 'Tue' WHEN 3 THEN 'Wed'
            WHEN 4 THEN 'Thu' WHEN 5 THEN 'Fri' ELSE 'Sat' END || ' ' || slot AS weekday_slot,
        CASE WHEN slot_hours IS NULL THEN 'unknown'
             ELSE CAST(CAST(ROUND(slot_hours) AS BIGINT) AS VARCHAR) || 'h' END AS slot_width,
        CASE WHEN outcome IN ('no_access', 'aborted', 'missed', 'cancelled') THEN appointments ELSE 0 END AS failed,
        CASE WHEN outcome IS NULL OR outcome <> 'cancelled' THEN appointments ELSE 0 END AS made,
        CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN appointments ELSE 0 END AS attended,
        CASE WHEN outcome = 'no_access' THEN appointments ELSE 0 END AS no_access,
        CASE WHEN outcome IN ('no_access', 'aborted') THEN appointments * $no_access_cost ELSE 0 END
          + CASE WHEN outcome = 'missed' THEN appointments * $landlord_missed_compensation ELSE 0 END
          + CASE WHEN outcome IN ('no_access', 'aborted', 'missed', 'cancelled')
                 THEN rebooked * $rebooking_cost ELSE 0 END AS cost
    FROM period
),
-- Every dimension in one pass (GROUPING SETS), then one row per (KPI, group).
grouped AS (
    SELECT cause, attribution, contractor, trade, patch, weekday_slot, slot_width,
        GROUPING(cause) AS by_cause, GROUPING(attribution) AS by_attribution,
        GROUPING(contractor) AS by_contractor, GROUPING(trade) AS by_trade,
        GROUPING(patch) AS by_patch, GROUPING(weekday_slot) AS by_weekday_slot,
        CAST(SUM(cost) AS DOUBLE) AS cost, CAST(SUM(failed) AS DOUBLE) AS failed,
        CAST(SUM(made) AS DOUBLE) AS made, CAST(SUM(no_access) AS DOUBLE) AS no_access,
        CAST(SUM(attended) AS DOUBLE) AS attended
    FROM appointment
    GROUP BY GROUPING SETS ((cause), (attribution), (contractor), (trade), (patch), (weekday_slot), (slot_width))
),
labelled AS (
    SELECT
        CASE WHEN by_cause = 0 THEN 'cause' WHEN by_attribution = 0 THEN 'attribution'
             WHEN by_contractor = 0 THEN 'contractor' WHEN by_trade = 0 THEN 'trade'
             WHEN by_patch = 0 THEN 'patch' WHEN by_weekday_slot = 0 THEN 'weekday_slot'
             ELSE 'slot_width' END AS dimension,
        COALESCE(cause, attribution, contractor, trade, patch, weekday_slot, slot_width) AS key,
        cost, failed, made, no_access, attended
    FROM grouped
)
SELECT m.ordinal AS ordinal, m.kpi AS kpi, l.key AS key,
    CASE WHEN m.measure = 'wastage' THEN l.cost ELSE 100 * l.no_access / NULLIF(l.attended, 0) END AS value,
    CASE WHEN m.measure = 'wastage' THEN l.failed ELSE l.no_access END AS numerator,
    CASE WHEN m.measure = 'rate' THEN l.attended
         WHEN l.dimension IN ('cause', 'attribution') THEN l.failed ELSE l.made END AS denominator
FROM labelled l
JOIN (VALUES
    (1, 'wastage_gbp_by_cause', 'cause', 'wastage'),
    (2, 'wastage_gbp_by_attribution', 'attribution', 'wastage'),
    (3, 'wastage_gbp_by_contractor', 'contractor', 'wastage'),
    (4, 'wastage_gbp_by_trade', 'trade', 'wastage'),
    (5, 'wastage_gbp_by_patch', 'patch', 'wastage'),
    (6, 'wastage_gbp_by_weekday_slot', 'weekday_slot', 'wastage'),
    (7, 'wastage_gbp_by_slot_width', 'slot_width', 'wastage'),
    (8, 'no_access_rate_by_weekday_slot', 'weekday_slot', 'rate'),
    (9, 'no_access_rate_by_slot_width', 'slot_width', 'rate')
) AS m(ordinal, kpi, dimension, measure) ON m.dimension = l.dimension
WHERE l.key IS NOT NULL
