//! The sample landlord's repairs feed: requests, work orders, appointments and visits over
//! the year, as the repairs system's messages (each with its defects).

use super::*;

impl Generator {
    fn instant(&mut self, date: NaiveDate, from_hour: u32, to_hour: u32) -> DateTime<Utc> {
        let seconds = self.rng.random_range(from_hour * 3600..to_hour * 3600);
        date.and_time(NaiveTime::MIN).and_utc() + Duration::seconds(i64::from(seconds))
    }

    fn next_weekday(date: NaiveDate) -> NaiveDate {
        let mut date = date;
        while matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            date += Duration::days(1);
        }
        date
    }

    pub(super) fn write_repairs(
        &mut self,
        properties: &[Property],
        households: &[Household],
        writer: &mut Writer,
    ) -> Result<(), Error> {
        writer.row(
            "truth/work_orders.csv",
            &[
                "work_order_ref",
                "repair_request_ref",
                "property_id",
                "priority",
                "work_class",
                "reported_at",
                "raised_at",
                "completed_at",
                "cancelled_at",
                "contractor",
                "trade",
                "occupied",
                "current_priority",
                "priority_changed_at",
                "parent_ref",
            ],
        )?;
        writer.row(
            "truth/appointments.csv",
            &[
                "appointment_ref",
                "work_order_ref",
                "slot_date",
                "slot",
                "booked_at",
                "reminder_sent",
                "outcome",
                "attribution",
                "verified",
                "arrived_at",
            ],
        )?;
        let days = (self.end - self.options.start).num_days();
        let mut messages = Vec::new();
        let noise = self.options.noise.clone();
        let tenancy: BTreeMap<usize, &Household> = households
            .iter()
            .map(|household| (household.home, household))
            .collect();
        for (home, property) in properties.iter().enumerate() {
            if !property.is_home {
                continue;
            }
            let expected = 3.5 * f64::from(self.options.years);
            for _ in 0..poisson(&mut self.rng, expected) {
                let date = self.options.start + Duration::days(self.rng.random_range(0..days));
                // A home nobody lives in on the report day gets void works, not responsive
                // repairs.
                let let_ = tenancy
                    .get(&home)
                    .map(|household| (household.start, household.end));
                let occupied = occupied_on(let_, date);
                // ... except the few a repairs desk records as responsive all the same.
                let work_class = if occupied || self.case(noise.responsive_on_void) {
                    "responsive"
                } else {
                    "void"
                };
                self.repair(
                    property,
                    Origin::Report(date),
                    work_class,
                    let_,
                    &mut messages,
                    writer,
                )?;
            }
        }
        messages.sort_by_key(|message| (message.at, message.sequence));
        for message in messages {
            writer.json_line("repairs/messages.jsonl", &message.body)?;
        }
        Ok(())
    }

    fn message(
        &mut self,
        messages: &mut Vec<Message>,
        at: DateTime<Utc>,
        mut body: serde_json::Value,
    ) {
        if at.date_naive() >= self.end {
            return; // after the extract: the feed has not seen it yet
        }
        body["messageId"] = json!(self.id("M", 8));
        // When the repairs system recorded the message (a second version of a work order
        // says when its priority changed).
        body["recordedAt"] = json!(rfc3339(at));
        let noise = &self.options.noise;
        let (late, duplicate) = (noise.late_message, noise.duplicate_message);
        // A report or a booking that reaches the feed late (after what follows from it), but
        // before the extract. Records with one version only, so that arriving late changes
        // nothing once everything has arrived.
        let mut delivered = at;
        if matches!(
            body["messageType"].as_str(),
            Some("RaiseRepair" | "RefinedAppointmentWindow")
        ) && self.case(late)
        {
            let end = self.end.and_time(NaiveTime::MIN).and_utc() - Duration::seconds(1);
            delivered = (at + Duration::minutes(self.cases.random_range(60..72 * 60))).min(end);
        }
        if self.case(duplicate) {
            messages.push(Message {
                at: delivered,
                sequence: messages.len(),
                body: body.clone(),
            });
        }
        messages.push(Message {
            at: delivered,
            sequence: messages.len(),
            body,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn repair(
        &mut self,
        property: &Property,
        origin: Origin,
        work_class: &str,
        tenancy: Option<(NaiveDate, Option<NaiveDate>)>,
        messages: &mut Vec<Message>,
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let noise = self.options.noise.clone();
        let property_reference = json!({"id": property.hms_ref, "allocatedBy": "hms"});
        let order_ref = match &origin {
            Origin::FollowOn { reference, .. } => reference.clone(),
            Origin::Report(_) => self.id("WO", 7),
        };
        // (request, reported at, priority, raised at, contractor, trade, parent)
        let (
            request_ref,
            reported_at,
            (priority, priority_name),
            raised_at,
            contractor,
            trade,
            parent,
        ) = match origin {
            Origin::Report(date) => {
                let request_ref = self.id("RR", 7);
                let reported_at = self.instant(date, 7, 19);
                let roll: f64 = self.rng.random();
                let mut cumulative = 0.0;
                let &(priority, priority_name, _) = PRIORITIES
                    .iter()
                    .find(|(_, _, share)| {
                        cumulative += share;
                        roll < cumulative
                    })
                    .unwrap_or(&PRIORITIES[3]);
                let raise_delay = if priority <= 2 {
                    self.rng.random_range(5..240)
                } else {
                    self.rng.random_range(10..2880)
                };
                let raised_at = reported_at + Duration::minutes(raise_delay);
                let contractor = *CONTRACTORS.choose(&mut self.rng).expect("non-empty");
                let mut trade = *TRADES.choose(&mut self.rng).expect("non-empty");
                if self.case(noise.damp_and_mould) {
                    trade = "damp and mould";
                }
                let channel =
                    ["phone", "online", "email", "in person"][self.rng.random_range(0..4)];
                // Now and then raised without a report: the clock starts when it is raised.
                let request = (!self.case(noise.no_request)).then(|| {
                    self.message(
                        messages,
                        reported_at,
                        json!({
                            "messageType": "RaiseRepair",
                            "repairRequestRef": request_ref,
                            "propertyReference": property_reference,
                            "dateReported": rfc3339(reported_at),
                            "priority": {"code": priority, "description": priority_name},
                            "description": format!("{trade} repair"),
                            "channel": channel,
                        }),
                    );
                    request_ref
                });
                let clock = if request.is_some() {
                    reported_at
                } else {
                    raised_at
                };
                (
                    request,
                    clock,
                    (priority, priority_name),
                    raised_at,
                    contractor,
                    trade,
                    None,
                )
            }
            Origin::FollowOn {
                reference: _,
                parent,
                raised_at,
                trade,
                contractor,
            } => {
                let &(priority, priority_name, _) =
                    &PRIORITIES[if self.cases.random_bool(0.4) { 2 } else { 3 }];
                (
                    None,
                    raised_at,
                    (priority, priority_name),
                    raised_at,
                    contractor,
                    trade,
                    Some(parent),
                )
            }
        };
        let emergency = priority <= 2;
        let occupied = occupied_on(tenancy, reported_at.date_naive());
        let request_json = request_ref
            .as_ref()
            .map_or(serde_json::Value::Null, |r| json!(r));
        let parent_json = parent
            .as_ref()
            .map_or(serde_json::Value::Null, |p| json!(p));
        // The order at a priority (every version but the priority is the same).
        let schedule = |code: i64, name: &str| {
            json!({
                "messageType": "ScheduleRepair",
                "workOrderRef": order_ref,
                "repairRequestRef": request_json,
                "parentWorkOrderRef": parent_json,
                "propertyReference": property_reference,
                "dateRaised": rfc3339(raised_at),
                "priority": {"code": code, "description": name},
                "contractor": {"name": contractor},
                "trade": trade,
                "workClass": work_class,
            })
        };
        self.message(messages, raised_at, schedule(priority, priority_name));
        // A second version of the order with another priority, raised or lowered, from an
        // hour to six weeks after it was raised (before or after the reported priority's
        // target).
        let mut current_priority = priority;
        let mut priority_changed_at = None;
        if self.case(noise.priority_change) {
            let others: Vec<_> = PRIORITIES
                .iter()
                .filter(|(code, _, _)| *code != priority && *code <= 4)
                .collect();
            let &&(code, name, _) = others
                .get(self.cases.random_range(0..others.len()))
                .expect("other priorities");
            let at = raised_at + Duration::minutes(self.cases.random_range(60..60 * 24 * 42));
            current_priority = code;
            priority_changed_at = Some(at);
            self.message(messages, at, schedule(code, name));
        }
        let mut completed_at = None;
        let mut cancelled_at = None;
        let mut follow_on = None;
        if self.chance(noise.cancelled_work_order) {
            let at = raised_at + Duration::hours(self.rng.random_range(2..96));
            self.message(
                messages,
                at,
                json!({
                    "messageType": "CancelRepair",
                    "workOrderRef": order_ref,
                    "dateCancelled": rfc3339(at),
                    "status": "cancelled",
                }),
            );
            cancelled_at = Some(at);
        } else {
            let mut slot_date = Self::next_weekday(if emergency {
                raised_at.date_naive()
            } else {
                raised_at.date_naive()
                    + Duration::days(match priority {
                        3 => self.rng.random_range(1..5),
                        _ => self.rng.random_range(3..24),
                    })
            });
            let mut booked_at = raised_at + Duration::minutes(self.rng.random_range(1..90));
            let mut emergency_start = raised_at;
            for attempt in 0..5 {
                let appointment_ref = self.id("AP", 7);
                // Emergencies are attended within hours, at any time of day; other work gets a
                // weekday slot.
                let (slot, window_start, window_end, arrival) = if emergency {
                    let start = emergency_start;
                    let minutes = if self.chance(0.92) {
                        self.rng.random_range(30..600)
                    } else {
                        self.rng.random_range(600..2000)
                    };
                    (
                        "emergency",
                        start,
                        start + Duration::hours(24),
                        start + Duration::minutes(minutes),
                    )
                } else {
                    let &(slot, from, to) = SLOTS.choose(&mut self.rng).expect("non-empty");
                    let midnight = slot_date.and_time(NaiveTime::MIN).and_utc();
                    let arrival = self.instant(slot_date, from, to);
                    (
                        slot,
                        midnight + Duration::hours(i64::from(from)),
                        midnight + Duration::hours(i64::from(to)),
                        arrival,
                    )
                };
                let day = window_start.date_naive();
                let booked = if emergency {
                    window_start
                } else {
                    booked_at.min(window_start - Duration::minutes(30))
                };
                let reminder = !emergency && self.chance(noise.reminder);
                self.message(
                    messages,
                    booked,
                    json!({
                        "messageType": "RefinedAppointmentWindow",
                        "appointmentRef": appointment_ref,
                        "workOrderRef": order_ref,
                        "appointmentDate": day.to_string(),
                        "slot": slot,
                        "earliestArrivalTime": rfc3339(window_start),
                        "latestArrivalTime": rfc3339(window_end),
                        "bookedAt": rfc3339(booked),
                        "reminderSent": reminder,
                    }),
                );
                let no_access = if reminder {
                    noise.no_access_reminded
                } else {
                    noise.no_access_not_reminded
                };
                let roll: f64 = self.rng.random();
                let last = attempt == 4;
                let aborted = !last && self.case(noise.aborted_visit);
                let (outcome, attribution, at) = if last {
                    ("kept_completed", "", arrival)
                } else if aborted {
                    // Unsafe to work on arrival (no gas safe engineer, asbestos suspected).
                    let side = if contractor == "In-house DLO" {
                        "landlord"
                    } else {
                        "contractor"
                    };
                    ("aborted", side, arrival)
                } else if roll < noise.resident_cancelled {
                    let notice = Duration::hours(self.rng.random_range(2..48));
                    // An emergency is booked when raised: its cancellation comes after that.
                    let at = if emergency {
                        window_start + notice / 6
                    } else {
                        window_start - notice
                    };
                    ("cancelled", "resident", at)
                } else if roll < noise.resident_cancelled + noise.landlord_missed {
                    (
                        "missed",
                        if contractor == "In-house DLO" {
                            "landlord"
                        } else {
                            "contractor"
                        },
                        window_end,
                    )
                } else if roll < noise.resident_cancelled + noise.landlord_missed + no_access {
                    ("no_access", "resident", arrival)
                } else if !emergency
                    && roll
                        < noise.resident_cancelled
                            + noise.landlord_missed
                            + no_access
                            + noise.kept_not_completed
                {
                    // An emergency is complete once made safe: remaining work would be a follow-on.
                    ("kept_not_completed", "", arrival)
                } else {
                    ("kept_completed", "", arrival)
                };
                // Full evidence includes an arrival inside the window.
                let mut verified = outcome == "no_access"
                    && self.chance(noise.no_access_verified)
                    && arrival <= window_end;
                let partial = verified && self.case(noise.partial_evidence);
                verified &= !partial;
                let evidence = match outcome {
                    "no_access" if partial && self.cases.random_bool(0.5) => {
                        json!({"arrivalTime": rfc3339(arrival), "contactAttempts": 0, "cardLeft": true, "photo": false})
                    }
                    "no_access" if partial => {
                        json!({"arrivalTime": null, "contactAttempts": self.cases.random_range(1..4), "cardLeft": true, "photo": false})
                    }
                    "no_access" if verified => {
                        json!({"arrivalTime": rfc3339(arrival), "contactAttempts": self.rng.random_range(2..4), "cardLeft": true, "photo": self.chance(0.6)})
                    }
                    "no_access" => {
                        json!({"arrivalTime": null, "contactAttempts": 0, "cardLeft": false, "photo": false})
                    }
                    "kept_completed" | "kept_not_completed" | "aborted" => {
                        json!({"arrivalTime": rfc3339(arrival)})
                    }
                    _ => json!({}),
                };
                let type_code = match outcome {
                    "no_access" => 70,
                    "missed" => 75,
                    "cancelled" => 60,
                    "kept_not_completed" => 40,
                    "aborted" => 45,
                    _ => 80,
                };
                let visible = at.date_naive() < self.end;
                if visible && self.case(noise.corrected_outcome) {
                    // Recorded wrongly first, corrected by the message below.
                    let wrong = at - Duration::minutes(30);
                    self.message(messages, wrong, json!({
                        "messageType": "JobStatusUpdate",
                        "appointmentRef": appointment_ref,
                        "workOrderRef": order_ref,
                        "eventTime": rfc3339(wrong),
                        "typeCode": 70,
                        "outcome": "no_access",
                        "attribution": "resident",
                        "evidence": {"arrivalTime": null, "contactAttempts": 0, "cardLeft": false, "photo": false},
                    }));
                }
                self.message(messages, at, json!({
                    "messageType": "JobStatusUpdate",
                    "appointmentRef": appointment_ref,
                    "workOrderRef": order_ref,
                    "eventTime": rfc3339(at),
                    "typeCode": type_code,
                    "outcome": outcome,
                    "attribution": if attribution.is_empty() { serde_json::Value::Null } else { json!(attribution) },
                    "evidence": evidence,
                }));
                writer.row(
                    "truth/appointments.csv",
                    &[
                        &appointment_ref,
                        &order_ref,
                        &day.to_string(),
                        slot,
                        &rfc3339(booked),
                        if reminder { "true" } else { "false" },
                        if visible { outcome } else { "" },
                        if visible { attribution } else { "" },
                        if verified { "true" } else { "false" },
                        // When an operative arrived and worked (or found it unsafe).
                        &if visible
                            && matches!(
                                outcome,
                                "kept_completed" | "kept_not_completed" | "aborted"
                            )
                        {
                            rfc3339(arrival)
                        } else {
                            String::new()
                        },
                    ],
                )?;
                if outcome == "kept_completed" {
                    let done = at + Duration::minutes(self.rng.random_range(30..240));
                    // An emergency is complete once made safe; the rest of the work is a
                    // follow-on order.
                    let follow_on_ref =
                        (emergency && self.case(noise.follow_on)).then(|| self.id("WO", 7));
                    self.message(
                        messages,
                        done,
                        json!({
                            "messageType": "WorkOrderComplete",
                            "workOrderRef": order_ref,
                            "dateCompleted": rfc3339(done),
                            "status": "completed",
                            "followOnWorkOrderReference": follow_on_ref,
                        }),
                    );
                    completed_at = Some(done);
                    follow_on = follow_on_ref.map(|reference| (reference, done));
                    break;
                }
                booked_at = at + Duration::minutes(self.rng.random_range(5..240));
                emergency_start = at + Duration::hours(1);
                slot_date = Self::next_weekday(
                    at.date_naive()
                        + Duration::days(if emergency {
                            1
                        } else {
                            self.rng.random_range(2..10)
                        }),
                );
            }
        }
        if let Some((reference, made_safe)) = follow_on {
            let raised_at = made_safe + Duration::minutes(self.cases.random_range(10..600));
            self.repair(
                property,
                Origin::FollowOn {
                    reference,
                    parent: order_ref.clone(),
                    raised_at,
                    trade,
                    contractor,
                },
                work_class,
                tenancy,
                messages,
                writer,
            )?;
        }
        let shown = |at: Option<DateTime<Utc>>| {
            at.filter(|at| at.date_naive() < self.end)
                .map(rfc3339)
                .unwrap_or_default()
        };
        let (completed, cancelled) = (shown(completed_at), shown(cancelled_at));
        let visible_raise = if raised_at.date_naive() < self.end {
            rfc3339(raised_at)
        } else {
            String::new()
        };
        if reported_at.date_naive() < self.end && !visible_raise.is_empty() {
            writer.row(
                "truth/work_orders.csv",
                &[
                    &order_ref,
                    request_ref.as_deref().unwrap_or_default(),
                    &property.id,
                    &priority.to_string(),
                    work_class,
                    &rfc3339(reported_at),
                    &visible_raise,
                    &completed,
                    &cancelled,
                    contractor,
                    trade,
                    if occupied { "true" } else { "false" },
                    &current_priority.to_string(),
                    &shown(priority_changed_at),
                    parent.as_deref().unwrap_or_default(),
                ],
            )?;
        }
        Ok(())
    }
}
