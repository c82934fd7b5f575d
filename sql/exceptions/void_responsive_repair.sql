-- Exception: a responsive repair raised on a void property (void work belongs to the void
-- process, and RP02 counts occupied homes only).
-- Source: Housing Ombudsman exception reporting; TSM RP02 (occupied homes); DOMAIN.md §4.
-- Rule: a responsive work order on a property that has tenancy records, none of which covers
-- the day the work order was raised (started on or before it, not ended before it).
WITH known AS (SELECT DISTINCT property_ref FROM current_tenancies),
occupied AS (
    SELECT DISTINCT w.ref
    FROM current_work_orders w
    JOIN current_tenancies t ON t.property_ref = w.property_ref
    WHERE (t.start_date IS NULL OR t.start_date <= CAST(w.raised_at AS DATE))
      AND (t.end_date IS NULL OR t.end_date >= CAST(w.raised_at AS DATE))
)
SELECT 'responsive_repair_on_void_property' AS rule, 'work_order:' || w.ref AS record,
       'raised ' || CAST(CAST(w.raised_at AS DATE) AS VARCHAR) || ' on ' || w.property_ref || ', no tenancy that day' AS detail
FROM current_work_orders w
JOIN known k ON k.property_ref = w.property_ref
LEFT JOIN occupied o ON o.ref = w.ref
WHERE w.work_class = 'responsive' AND o.ref IS NULL
