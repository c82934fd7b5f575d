//! `run --out DIR`: golden records, cross-reference, tenancies, dead letters and the summary
//! as files for people and for the tests.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use mdm::Hub;
use pipeline::DeadLetter;

use crate::run::Summary;

pub fn write(
    out: &Path,
    summary: &Summary,
    hub: &Hub,
    dead_letters: &[DeadLetter],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let file = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = out.join(name);
        Ok(std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| path.display().to_string())?,
        ))
    };
    serde_json::to_writer_pretty(file("summary.json")?, summary)?;

    let mut writer = file("dead_letters.jsonl")?;
    for dead_letter in dead_letters {
        serde_json::to_writer(&mut writer, dead_letter)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;

    let mut xref = csv::Writer::from_writer(file("xref.csv")?);
    for entry in hub.xref() {
        xref.serialize(entry)?;
    }
    xref.flush()?;

    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let sources = |sources: &[pipeline::Reference]| {
        sources
            .iter()
            .map(|reference| format!("{}:{}", reference.allocated_by, reference.id))
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut persons = csv::Writer::from_writer(file("golden_persons.csv")?);
    persons.write_record([
        "golden_id",
        "title",
        "given_name",
        "middle_name",
        "family_name",
        "date_of_birth",
        "nino",
        "phone",
        "email",
        "postcode",
        "sources",
    ])?;
    for person in hub.golden_persons() {
        persons.write_record([
            person.golden_id.clone(),
            optional(&person.title),
            optional(&person.given_name),
            optional(&person.middle_name),
            optional(&person.family_name),
            person
                .date_of_birth
                .map(|date| date.to_string())
                .unwrap_or_default(),
            optional(&person.nino),
            optional(&person.phone),
            optional(&person.email),
            optional(&person.postcode),
            sources(&person.sources),
        ])?;
    }
    persons.flush()?;

    let mut properties = csv::Writer::from_writer(file("golden_properties.csv")?);
    properties.write_record([
        "golden_id",
        "uprn",
        "parent_uprn",
        "parent_golden_id",
        "saon",
        "paon",
        "street",
        "town",
        "postcode",
        "property_type",
        "sources",
    ])?;
    for property in hub.golden_properties() {
        properties.write_record([
            property.golden_id.clone(),
            optional(&property.uprn),
            optional(&property.parent_uprn),
            optional(&property.parent_golden_id),
            optional(&property.saon),
            optional(&property.paon),
            optional(&property.street),
            optional(&property.town),
            optional(&property.postcode),
            optional(&property.property_type),
            sources(&property.sources),
        ])?;
    }
    properties.flush()?;

    let mut tenancies = csv::Writer::from_writer(file("tenancies.csv")?);
    tenancies.write_record([
        "source",
        "tenancy_id",
        "golden_property_id",
        "golden_person_ids",
        "start_date",
        "tenure",
    ])?;
    for tenancy in hub.tenancies() {
        tenancies.write_record([
            tenancy.tenancy.allocated_by.clone(),
            tenancy.tenancy.id.clone(),
            optional(&tenancy.golden_property_id),
            tenancy.golden_person_ids.join(";"),
            tenancy
                .start_date
                .map(|date| date.to_string())
                .unwrap_or_default(),
            optional(&tenancy.tenure),
        ])?;
    }
    tenancies.flush()?;
    Ok(())
}
