-- Exception: a work order completed with no attended visit on record.
-- Source: Housing Ombudsman, Spotlight on repairs / exception reporting; DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
-- Rule: the work order has a completion, no cancellation, and none of its appointments has
-- the outcome kept_completed, kept_not_completed or aborted.
SELECT 'completed_without_attended_visit' AS rule, 'work_order:' || r.ref AS record,
       'completed ' || CAST(CAST(r.completed_at AS DATE) AS VARCHAR) || ' with no attended visit' AS detail
FROM repairs r
LEFT JOIN (
    SELECT DISTINCT work_order_ref FROM appointment_outcomes
    WHERE outcome IN ('kept_completed', 'kept_not_completed', 'aborted')
) attended ON attended.work_order_ref = r.ref
WHERE r.completed_at IS NOT NULL AND r.cancelled_at IS NULL AND attended.work_order_ref IS NULL
