//! The sample landlord's homes: blocks, houses and flats in towns, with UPRNs, postcodes
//! and the asset register's and the HMS's views of them (each with its defects).

use super::*;

impl Generator {
    pub(super) fn properties(&mut self) -> Vec<Property> {
        let mut properties = Vec::new();
        let mut homes = 0;
        let mut uprn: u64 = 100_023_000_000 + self.rng.random_range(0..1_000_000);
        let mut street_index = 0;
        while homes < self.options.homes {
            let (town, districts) = TOWNS[street_index % TOWNS.len()];
            let street = (
                STREET_NAMES[street_index % STREET_NAMES.len()].to_string(),
                (street_index / STREET_NAMES.len() + street_index) % STREET_TYPES.len(),
            );
            // A town cycles through its districts; the street name list repeats in other towns.
            let district = districts[(street_index / TOWNS.len()) % districts.len()];
            let sector = self.rng.random_range(1..10);
            let mut postcode = self.postcode(district, sector);
            let mut number = 1;
            for building in 0..self.rng.random_range(8..30) {
                if homes >= self.options.homes {
                    break;
                }
                if building % 10 == 9 {
                    postcode = self.postcode(district, sector);
                }
                let mut push = |generator: &mut Self,
                                saon: Option<String>,
                                paon: String,
                                kind: &'static str,
                                parent: Option<String>,
                                is_home: bool| {
                    uprn += generator.rng.random_range(1..40);
                    let id = generator.id("PR", 6);
                    let hms_ref = generator.id("P", 6);
                    properties.push(Property {
                        id,
                        hms_ref,
                        uprn: uprn.to_string(),
                        parent_uprn: parent,
                        saon,
                        paon,
                        street: street.clone(),
                        town,
                        postcode: postcode.clone(),
                        property_type: kind,
                        is_home,
                    });
                    uprn.to_string()
                };
                let roll: f64 = self.rng.random();
                if roll < 0.62 {
                    push(self, None, number.to_string(), "house", None, true);
                    homes += 1;
                    if self.chance(0.06) {
                        // Separate houses built on a plot: 14A, 14B are buildings, not flats.
                        for letter in ["A", "B"] {
                            push(self, None, format!("{number}{letter}"), "house", None, true);
                            homes += 1;
                        }
                    }
                } else if roll < 0.74 {
                    // A converted house: flats A-C inside building `number`.
                    let parent = push(self, None, number.to_string(), "block", None, false);
                    for letter in ["A", "B", "C"] {
                        push(
                            self,
                            Some(letter.to_string()),
                            number.to_string(),
                            "flat",
                            Some(parent.clone()),
                            true,
                        );
                        homes += 1;
                    }
                } else {
                    let parent = push(self, None, number.to_string(), "block", None, false);
                    for flat in 1..=self.rng.random_range(6..=16) {
                        push(
                            self,
                            Some(flat.to_string()),
                            number.to_string(),
                            "flat",
                            Some(parent.clone()),
                            true,
                        );
                        homes += 1;
                    }
                }
                number += if self.chance(0.5) { 1 } else { 2 };
            }
            street_index += 1;
        }
        properties
    }

    fn postcode(&mut self, district: &str, sector: u32) -> String {
        const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
        let a = UNIT[self.rng.random_range(0..UNIT.len())] as char;
        let b = UNIT[self.rng.random_range(0..UNIT.len())] as char;
        format!("{district} {sector}{a}{b}")
    }

    pub(super) fn write_properties(
        &mut self,
        properties: &[Property],
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let hms = "hms/properties.csv";
        writer.row(
            hms,
            &[
                "prop_ref",
                "uprn",
                "parent_uprn",
                "flat",
                "building",
                "street",
                "town",
                "postcode",
                "property_type",
            ],
        )?;
        let asset = "asset/assets.csv";
        writer.row(
            asset,
            &[
                "asset_id",
                "uprn",
                "address",
                "postcode",
                "asset_type",
                "construction_year",
            ],
        )?;
        let truth = "truth/properties.csv";
        writer.row(truth, &["source", "source_id", "property_id", "noise"])?;
        for property in properties {
            writer.row(
                hms,
                &[
                    &property.hms_ref,
                    &property.uprn,
                    property.parent_uprn.as_deref().unwrap_or(""),
                    property.saon.as_deref().unwrap_or(""),
                    &property.paon,
                    &property.street_full(),
                    property.town,
                    &property.postcode,
                    property.property_type,
                ],
            )?;
            writer.row(truth, &["hms", &property.hms_ref, &property.id, ""])?;
            if !self.chance(0.9) {
                write_defects(writer, "hms", &property.hms_ref, &["no_asset_record"])?;
                continue;
            }
            let asset_id = self.id("AS", 6);
            let mut noise = Vec::new();
            let street = if self.chance(0.5) {
                noise.push("street_abbreviation");
                property.street_short()
            } else {
                property.street_full()
            };
            let letter_flat = property
                .saon
                .as_deref()
                .is_some_and(|saon| saon.chars().all(|c| c.is_ascii_alphabetic()));
            let address = match property.saon.as_deref() {
                None => format!("{} {street}", property.paon),
                Some(saon) if letter_flat && self.chance(0.3) => {
                    // `14b High Street` for flat B of 14: the hard case; UPRN kept below.
                    noise.push("flat_letter_as_suffix");
                    format!("{}{} {street}", property.paon, saon.to_lowercase())
                }
                Some(saon) => match self.rng.random_range(0..4) {
                    0 => format!("Flat {saon}, {} {street}", property.paon),
                    1 => {
                        noise.push("address_variant");
                        format!("{saon}/{} {street}", property.paon)
                    }
                    2 => {
                        noise.push("address_variant");
                        format!("Apartment {saon}, {} {street}", property.paon)
                    }
                    _ => {
                        noise.push("address_variant");
                        format!("{} {street} Flat {saon}", property.paon)
                    }
                },
            };
            let postcode = if self.chance(0.1) {
                noise.push("postcode_format");
                property.postcode.replace(' ', "").to_lowercase()
            } else {
                property.postcode.clone()
            };
            let uprn = if !noise.contains(&"flat_letter_as_suffix")
                && self.chance(self.options.noise.missing_uprn)
            {
                noise.push("missing_uprn");
                ""
            } else {
                property.uprn.as_str()
            };
            let year = self.rng.random_range(1900..2015).to_string();
            writer.row(
                asset,
                &[
                    &asset_id,
                    uprn,
                    &address,
                    &postcode,
                    property.property_type,
                    &year,
                ],
            )?;
            writer.row(truth, &["asset", &asset_id, &property.id, &noise.join(";")])?;
            write_defects(writer, "asset", &asset_id, &noise)?;
        }
        Ok(())
    }
}
