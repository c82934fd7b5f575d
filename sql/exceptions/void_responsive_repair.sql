-- Exception: a responsive repair to a home nobody lived in on the report day (void work
-- belongs to the void process, and RP02 counts occupied homes only).
-- Source: Housing Ombudsman exception reporting; TSM RP02 (occupied homes); DOMAIN.md §4;
-- docs/kpis.md.
-- Rule: a responsive work order whose property had no tenancy (from any source) in force on
-- the report day (the raised day when no request arrived): started on or before it, not
-- ended before it. Occupancy is read as RP02 reads it (`repair_days.occupied`), and when no
-- tenancy is known at all, nothing is flagged.
WITH occupied AS (
    SELECT DISTINCT r.ref
    FROM repairs r
    JOIN current_tenancies t ON t.property_ref = r.property_ref
    WHERE (t.start_date IS NULL OR t.start_date <= CAST(r.clock_start AS DATE))
      AND (t.end_date IS NULL OR t.end_date >= CAST(r.clock_start AS DATE))
)
SELECT 'responsive_repair_on_void_property' AS rule, 'work_order:' || r.ref AS record,
       'reported ' || CAST(CAST(r.clock_start AS DATE) AS VARCHAR) || ' on ' || r.property_ref || ', no tenancy that day' AS detail
FROM repairs r
CROSS JOIN (SELECT COUNT(*) AS tenancies FROM current_tenancies) k
LEFT JOIN occupied o ON o.ref = r.ref
WHERE r.work_class = 'responsive' AND o.ref IS NULL AND k.tenancies > 0
