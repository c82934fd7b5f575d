-- The dashboard's daily trend: per slot day between $from and $to, appointments made,
-- appointments kept % and the no-access rate, by the definitions of kpi/appointments.sql.
SELECT slot_date AS day,
    CAST(SUM(CASE WHEN outcome IS NULL OR outcome <> 'cancelled' THEN 1 ELSE 0 END) AS DOUBLE) AS made,
    100 * CAST(SUM(CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN 1 ELSE 0 END) AS DOUBLE)
        / NULLIF(CAST(SUM(CASE WHEN outcome IS NULL OR outcome <> 'cancelled' THEN 1 ELSE 0 END) AS DOUBLE), 0) AS kept_pct,
    100 * CAST(SUM(CASE WHEN outcome = 'no_access' THEN 1 ELSE 0 END) AS DOUBLE)
        / NULLIF(CAST(SUM(CASE WHEN outcome IN ('kept_completed', 'kept_not_completed', 'aborted', 'no_access') THEN 1 ELSE 0 END) AS DOUBLE), 0) AS no_access_rate_pct
FROM appointment_outcomes
WHERE slot_date BETWEEN $from AND $to
GROUP BY slot_date
ORDER BY slot_date
