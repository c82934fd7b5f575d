-- Exception: a work order's priority was lowered after its original target had passed (the
-- target must not move; DOMAIN.md §4).
-- Source: Housing Ombudsman exception reporting; DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
-- Rule: a version of the work order carries a higher priority code (less urgent) than an
-- earlier version, and was changed after the earlier version's target (due_at).
SELECT DISTINCT 'priority_lowered_after_target' AS rule, 'work_order:' || later.ref AS record,
       'priority ' || CAST(earlier.priority AS VARCHAR) || ' -> ' || CAST(later.priority AS VARCHAR)
           || ' on ' || CAST(later.changed_at AS VARCHAR) || ', target was ' || CAST(earlier.due_at AS VARCHAR) AS detail
FROM work_orders earlier
JOIN work_orders later ON later.ref = earlier.ref AND later.seq > earlier.seq
WHERE later.priority > earlier.priority
  AND earlier.due_at IS NOT NULL AND later.changed_at > earlier.due_at
