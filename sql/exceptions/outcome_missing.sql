-- Exception: an appointment with no outcome recorded 24 hours after its slot ended.
-- Source: Housing Ombudsman exception reporting; DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
-- Rule: no visit outcome, and the latest arrival time (else the end of the slot day) is more
-- than 24 hours before $as_of.
SELECT 'outcome_missing_24h_after_slot' AS rule, 'appointment:' || ref AS record,
       'slot ' || CAST(slot_date AS VARCHAR) || ' ' || slot || ', no outcome' AS detail
FROM appointment_outcomes
WHERE outcome IS NULL
  AND date_part('epoch', $as_of)
      - COALESCE(date_part('epoch', window_end), date_part('epoch', CAST(slot_date AS TIMESTAMP)) + 86400) > 86400
