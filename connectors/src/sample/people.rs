//! The sample landlord's people: households in its homes, their tenancies, the HMS's and
//! the CRM's records of them (each with its defects), and their vulnerabilities.

use super::*;

impl Generator {
    fn nino(&mut self) -> String {
        new_nino(&mut self.rng, &mut self.used_ninos)
    }

    fn person(&mut self, family: &str, female: bool, dob: NaiveDate) -> Person {
        let names = if female { FEMALE } else { MALE };
        let given = self.rng.random_range(0..names.len());
        let middle = self
            .chance(0.3)
            .then(|| self.rng.random_range(0..names.len()));
        let id = self.id("PE", 6);
        let nino = self.nino();
        let phone = format!("07{:09}", self.rng.random_range(0..1_000_000_000u64));
        Person {
            id,
            female,
            given,
            middle,
            family: family.to_string(),
            dob,
            nino,
            phone,
            email: None,
        }
    }

    fn adult_dob(&mut self) -> NaiveDate {
        let start = NaiveDate::from_ymd_opt(1940, 1, 1).expect("valid date");
        start + Duration::days(self.rng.random_range(0..(64 * 365)))
    }

    fn email(&mut self, person: &Person) -> Option<String> {
        self.chance(0.6).then(|| {
            let family: String = person
                .family
                .chars()
                .filter(char::is_ascii_alphabetic)
                .collect();
            format!(
                "{}.{}{}@example.com",
                person.given_name().to_lowercase(),
                family.to_lowercase(),
                self.rng.random_range(1..99)
            )
        })
    }

    pub(super) fn households(&mut self, properties: &[Property]) -> Vec<Household> {
        let mut households = Vec::new();
        for (home, property) in properties.iter().enumerate() {
            if !property.is_home || self.chance(self.options.noise.void_homes) {
                continue;
            }
            let family = FAMILY_NAMES
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("Smith");
            let roll: f64 = self.rng.random();
            let mut members = Vec::new();
            let female = self.chance(0.55);
            let dob = self.adult_dob();
            let mut first = self.person(family, female, dob);
            first.email = self.email(&first);
            let tenants;
            if roll < self.options.noise.twins {
                // Adult twins: same surname, date of birth, address and phone; never one person.
                let twin_female = self.chance(0.5);
                let mut twin = self.person(family, twin_female, dob);
                while twin.female == first.female && twin.given == first.given {
                    twin.given = self.rng.random_range(0..twin.names().len());
                }
                twin.phone = first.phone.clone();
                twin.email = self.email(&twin);
                members.extend([first, twin]);
                tenants = 2;
            } else if roll < 0.45 {
                members.push(first);
                tenants = 1;
            } else if roll < 0.80 {
                // A couple on a joint tenancy, sharing a landline-style phone and often a surname.
                let partner_family = if self.chance(0.8) {
                    family
                } else {
                    FAMILY_NAMES
                        .choose(&mut self.rng)
                        .copied()
                        .unwrap_or("Jones")
                };
                let partner_dob = self.adult_dob();
                let mut partner = self.person(partner_family, !female, partner_dob);
                if self.chance(0.5) {
                    partner.phone = first.phone.clone();
                }
                partner.email = if self.chance(0.3) {
                    first.email.clone()
                } else {
                    self.email(&partner)
                };
                members.extend([first, partner]);
                tenants = 2;
            } else {
                // A tenant with an adult child in the household (not a party to the tenancy).
                // An adult child: born 20-40 years after the parent, and by 2006.
                let latest = NaiveDate::from_ymd_opt(2006, 1, 1).expect("valid date");
                let mut child_dob = dob + Duration::days(self.rng.random_range(20 * 365..40 * 365));
                if child_dob > latest {
                    child_dob = latest
                        - Duration::days(
                            self.rng
                                .random_range(0..(latest - dob).num_days().clamp(1, 20 * 365)),
                        );
                }
                let child_female = self.chance(0.5);
                let mut child = self.person(family, child_female, child_dob);
                child.phone = first.phone.clone();
                members.extend([first, child]);
                tenants = 1;
            }
            let start = self.options.start - Duration::days(self.rng.random_range(30..(20 * 365)));
            let days = (self.end - self.options.start).num_days().max(1);
            let end = self
                .case(self.options.noise.tenancy_ends)
                .then(|| self.options.start + Duration::days(self.cases.random_range(0..days)));
            households.push(Household {
                home,
                members,
                tenants,
                start,
                end,
            });
        }
        households
    }

    pub(super) fn write_people(
        &mut self,
        properties: &[Property],
        households: &[Household],
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let tenants_file = "hms/tenants.csv";
        writer.row(
            tenants_file,
            &[
                "person_ref",
                "title",
                "forename",
                "middle_name",
                "surname",
                "dob",
                "ni_number",
                "phone",
                "email",
            ],
        )?;
        let tenancies_file = "hms/tenancies.csv";
        writer.row(
            tenancies_file,
            &[
                "tenancy_ref",
                "prop_ref",
                "tenant_refs",
                "start_date",
                "end_date",
                "tenure",
            ],
        )?;
        let crm_file = "crm/contacts.csv";
        writer.row(
            crm_file,
            &[
                "contact_id",
                "full_name",
                "date_of_birth",
                "mobile",
                "email",
                "postcode",
                "address_line",
            ],
        )?;
        let vulnerabilities_file = "hms/vulnerabilities.csv";
        writer.row(
            vulnerabilities_file,
            &[
                "alert_id",
                "person_ref",
                "code",
                "description",
                "start_date",
                "end_date",
                "review_date",
            ],
        )?;
        let truth = "truth/persons.csv";
        writer.row(truth, &["source", "source_id", "person_id", "noise"])?;
        writer.row("truth/crm_only.csv", &["person_id"])?;
        let noise = self.options.noise.clone();
        for household in households {
            let property = &properties[household.home];
            let mut tenant_refs = Vec::new();
            for (index, person) in household.members.iter().enumerate() {
                let copies = if self.chance(noise.hms_duplicate) {
                    2
                } else {
                    1
                };
                // Whether an HMS record holds the real date of birth (not a default): a CRM
                // date that differs from it is then a disagreement between the systems.
                let mut hms_dob = false;
                for copy in 0..copies {
                    let person_ref = self.id("T", 6);
                    let mut flags = Vec::new();
                    if copy == 1 {
                        flags.push("hms_duplicate");
                    }
                    let title = person.title(&mut self.rng);
                    let (title_field, forename) = if self.chance(noise.title_in_name) {
                        flags.push("title_in_name");
                        (String::new(), format!("{title} {}", person.given_name()))
                    } else {
                        (title.to_string(), person.given_name().to_string())
                    };
                    let dob = if self.chance(noise.default_dob / 2.0) {
                        flags.push("default_dob");
                        "01/01/1900".to_string()
                    } else {
                        hms_dob = true;
                        person.dob.format("%d/%m/%Y").to_string()
                    };
                    let nino = if self.chance(noise.placeholder_nino) {
                        flags.push("placeholder_nino");
                        PLACEHOLDER_NINOS
                            .choose(&mut self.rng)
                            .copied()
                            .unwrap_or("QQ123456C")
                            .to_string()
                    } else if self.chance(noise.missing_nino) {
                        flags.push("missing_nino");
                        String::new()
                    } else {
                        person.nino.clone()
                    };
                    let middle = person
                        .middle
                        .map(|middle| person.names()[middle].0)
                        .unwrap_or("");
                    writer.row(
                        tenants_file,
                        &[
                            &person_ref,
                            &title_field,
                            &forename,
                            middle,
                            &person.family,
                            &dob,
                            &nino,
                            &person.phone,
                            person.email.as_deref().unwrap_or(""),
                        ],
                    )?;
                    writer.row(truth, &["hms", &person_ref, &person.id, &flags.join(";")])?;
                    write_defects(writer, "hms", &person_ref, &flags)?;
                    if copy == 0 {
                        if index < household.tenants {
                            tenant_refs.push(person_ref.clone());
                        }
                        if self.chance(0.08) {
                            self.vulnerability(&person_ref, writer)?;
                        }
                    }
                }
                if self.chance(noise.crm_coverage) {
                    self.crm_contact(person, property, hms_dob, writer)?;
                }
            }
            let tenancy_ref = self.id("TY", 6);
            writer.row(
                tenancies_file,
                &[
                    &tenancy_ref,
                    &property.hms_ref,
                    &tenant_refs.join(";"),
                    &household.start.format("%d/%m/%Y").to_string(),
                    &household
                        .end
                        .map(|end| end.format("%d/%m/%Y").to_string())
                        .unwrap_or_default(),
                    if household.tenants == 2 {
                        "joint secure"
                    } else {
                        "secure"
                    },
                ],
            )?;
            if self.chance(noise.crm_only * noise.crm_coverage) {
                // An applicant in the CRM who is not a tenant: a person of their own.
                let female = self.chance(0.5);
                let dob = self.adult_dob();
                let family = FAMILY_NAMES
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("Smith");
                let applicant = self.person(family, female, dob);
                writer.row("truth/crm_only.csv", &[&applicant.id])?;
                self.crm_contact(&applicant, property, false, writer)?;
            }
        }
        Ok(())
    }

    fn vulnerability(&mut self, person_ref: &str, writer: &mut Writer) -> Result<(), Error> {
        let alert_id = self.id("VA", 6);
        let (code, description) = *VULNERABILITY_CODES
            .choose(&mut self.rng)
            .expect("non-empty");
        let start = self.options.start - Duration::days(self.rng.random_range(0..3 * 365));
        let temporary = self.chance(0.3);
        let end = temporary.then(|| start + Duration::days(self.rng.random_range(90..720)));
        let review = start + Duration::days(365);
        let date = |date: NaiveDate| date.format("%d/%m/%Y").to_string();
        writer.row(
            "hms/vulnerabilities.csv",
            &[
                &alert_id,
                person_ref,
                code,
                description,
                &date(start),
                &end.map(date).unwrap_or_default(),
                &date(review),
            ],
        )
    }

    /// A CRM contact of `person`; `hms_dob`: whether an HMS record of theirs holds their
    /// real date of birth.
    fn crm_contact(
        &mut self,
        person: &Person,
        property: &Property,
        hms_dob: bool,
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let noise = self.options.noise.clone();
        let contact_id = self.id("C", 7);
        let mut flags = Vec::new();
        let mut given = person.given_name().to_string();
        let nicknames = person.names()[person.given].1;
        if !nicknames.is_empty() && self.chance(noise.nickname) {
            flags.push("nickname");
            given = nicknames[0].to_string();
        }
        let mut family = person.family.clone();
        if self.chance(noise.typo) {
            flags.push("typo");
            family = typo(&mut self.rng, &family);
        }
        let full_name = if self.chance(noise.name_swap) {
            flags.push("name_swap");
            format!("{}, {given}", family.to_uppercase())
        } else if self.chance(0.4) {
            format!("{} {given} {family}", person.title(&mut self.rng))
        } else {
            format!("{given} {family}")
        };
        let dob = if self.chance(noise.missing_dob) {
            flags.push("missing_dob");
            String::new()
        } else if self.chance(noise.default_dob) {
            flags.push("default_dob");
            "1900-01-01".to_string()
        } else if person.dob.day() <= 12
            && person.dob.day() != person.dob.month()
            && self.chance(noise.dob_swap)
        {
            flags.push("dob_swap");
            format!(
                "{}-{:02}-{:02}",
                person.dob.year(),
                person.dob.day(),
                person.dob.month()
            )
        } else {
            person.dob.format("%Y-%m-%d").to_string()
        };
        let phone = if self.chance(0.5) {
            format!("+44 {} {}", &person.phone[1..5], &person.phone[5..])
        } else {
            format!("{} {}", &person.phone[..5], &person.phone[5..])
        };
        let address = match &property.saon {
            Some(saon) => format!("Flat {saon}, {} {}", property.paon, property.street_full()),
            None => format!("{} {}", property.paon, property.street_full()),
        };
        writer.row(
            "crm/contacts.csv",
            &[
                &contact_id,
                &full_name,
                &dob,
                &phone,
                person.email.as_deref().unwrap_or(""),
                &property.postcode,
                &address,
            ],
        )?;
        writer.row(
            "truth/persons.csv",
            &["crm", &contact_id, &person.id, &flags.join(";")],
        )?;
        if hms_dob && flags.contains(&"dob_swap") {
            flags.push("dob_disagrees");
        }
        write_defects(writer, "crm", &contact_id, &flags)
    }
}
