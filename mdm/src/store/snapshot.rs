//! The rows a write replaces, taken from the hub (`Snapshot::of`), and how they are written:
//! what changed deleted, what is live inserted with binary `COPY`.

use super::error::Context;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};

use pipeline::Reference;
use pipeline::entity::{Tenancy, Vulnerability};
use serde_json::{Value, json};

use super::Result;
use crate::{Changes, Entity, Hub};

/// Writes the cross-reference rows of the records that changed (`changed_record`, their
/// current rows in `new_xref`): closes the history rows whose golden id changed and opens new
/// ones; replaces the redirects of `changed_redirect` with `new_redirect`, recording merges
/// (redirects new or moved) and unmerges (redirects gone).
const WRITE_XREF: &str = "
    ANALYZE changed_record, new_xref, changed_redirect, new_redirect;
    UPDATE goldthread.xref_history h SET valid_to = now()
      FROM changed_record c LEFT JOIN new_xref n USING (entity, source, source_id)
     WHERE h.valid_to IS NULL
       AND (h.entity, h.source, h.source_id) = (c.entity, c.source, c.source_id)
       AND n.golden_id IS DISTINCT FROM h.golden_id;
    INSERT INTO goldthread.xref_history
    SELECT n.entity, n.source, n.source_id, n.golden_id, now(), NULL
      FROM new_xref n
      LEFT JOIN goldthread.xref_history h
        ON h.valid_to IS NULL
       AND (h.entity, h.source, h.source_id) = (n.entity, n.source, n.source_id)
     WHERE h.entity IS NULL;
    DELETE FROM goldthread.xref x USING changed_record c
     WHERE (x.entity, x.source, x.source_id) = (c.entity, c.source, c.source_id);
    INSERT INTO goldthread.xref SELECT * FROM new_xref;
    INSERT INTO goldthread.merge_history
    SELECT now(), n.entity, 'merged', n.golden_id, n.survivor_id FROM new_redirect n
     WHERE NOT EXISTS (SELECT 1 FROM goldthread.redirect r
                        WHERE (r.entity, r.golden_id, r.survivor_id)
                            = (n.entity, n.golden_id, n.survivor_id));
    INSERT INTO goldthread.merge_history
    SELECT now(), r.entity, 'unmerged', r.golden_id, r.survivor_id
      FROM goldthread.redirect r JOIN changed_redirect c USING (entity, golden_id)
     WHERE NOT EXISTS (SELECT 1 FROM new_redirect n
                        WHERE (n.entity, n.golden_id) = (r.entity, r.golden_id));
    DELETE FROM goldthread.redirect r USING changed_redirect c
     WHERE (r.entity, r.golden_id) = (c.entity, c.golden_id);
    INSERT INTO goldthread.redirect SELECT * FROM new_redirect;";

/// Writes the rows of a snapshot: deletes what changed, inserts what is live now. The large
/// tables are filled with binary `COPY` and the keys are passed as typed arrays: PostgreSQL
/// then parses no JSON for them.
pub(super) async fn write_snapshot(
    transaction: &tokio_postgres::Transaction<'_>,
    snapshot: &Snapshot,
) -> Result<()> {
    let records = &snapshot.records;
    let xref = &snapshot.xref;
    let redirects = &snapshot.redirects;
    // The redirect rows replaced: the changed ids' own (an id merged back no longer
    // redirects) and those of every redirect through a changed id.
    let redirect_keys: Vec<(Entity, &str)> = snapshot
        .person_ids
        .iter()
        .map(|id| (Entity::Person, id.as_str()))
        .chain(
            snapshot
                .property_ids
                .iter()
                .map(|id| (Entity::Property, id.as_str())),
        )
        .chain(
            redirects
                .iter()
                .map(|(entity, from, _)| (*entity, from.as_str())),
        )
        .collect();
    let stagings: [(&str, &str, Vec<Vec<&str>>); 4] = [
        (
            "changed_record",
            "entity, source, source_id",
            vec![
                column(records, |(entity, _)| entity.as_str()),
                column(records, |(_, reference)| &reference.allocated_by),
                column(records, |(_, reference)| &reference.id),
            ],
        ),
        (
            "new_xref",
            "entity, source, source_id, golden_id",
            vec![
                column(xref, |(entity, _, _)| entity.as_str()),
                column(xref, |(_, reference, _)| &reference.allocated_by),
                column(xref, |(_, reference, _)| &reference.id),
                column(xref, |(_, _, golden_id)| golden_id),
            ],
        ),
        (
            "changed_redirect",
            "entity, golden_id",
            vec![
                column(&redirect_keys, |(entity, _)| entity.as_str()),
                column(&redirect_keys, |(_, golden_id)| golden_id),
            ],
        ),
        (
            "new_redirect",
            "entity, golden_id, survivor_id",
            vec![
                column(redirects, |(entity, _, _)| entity.as_str()),
                column(redirects, |(_, golden_id, _)| golden_id),
                column(redirects, |(_, _, survivor_id)| survivor_id),
            ],
        ),
    ];
    for (table, names, columns) in &stagings {
        let arrays: Vec<String> = (1..=columns.len())
            .map(|n| format!("${n}::text[]"))
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = columns
            .iter()
            .map(|column| column as &(dyn ToSql + Sync))
            .collect();
        transaction
            .execute(
                &format!(
                    "CREATE TEMP TABLE {table} ON COMMIT DROP AS
                     SELECT * FROM unnest({}) AS s({names})",
                    arrays.join(", ")
                ),
                &params,
            )
            .await
            .with_context(|| format!("staging {table}"))?;
    }
    transaction
        .batch_execute(WRITE_XREF)
        .await
        .context("writing the cross-reference and its history")?;
    let tenancy_keys = &snapshot.tenancy_keys;
    let vulnerability_keys = &snapshot.vulnerability_keys;
    let deletes: [(&str, &[&(dyn ToSql + Sync)]); 5] = [
        (
            "DELETE FROM goldthread.golden_person WHERE golden_id = ANY($1)",
            &[&snapshot.person_ids],
        ),
        (
            "DELETE FROM goldthread.golden_property WHERE golden_id = ANY($1)",
            &[&snapshot.property_ids],
        ),
        (
            "DELETE FROM goldthread.match_decision
              WHERE (entity = 'person' AND golden_id = ANY($1))
                 OR (entity = 'property' AND golden_id = ANY($2))",
            &[&snapshot.person_ids, &snapshot.property_ids],
        ),
        (
            "DELETE FROM goldthread.tenancy_record t
              USING unnest($1::text[], $2::text[]) AS k(source, tenancy_id)
              WHERE (t.source, t.tenancy_id) = (k.source, k.tenancy_id)",
            &[
                &column(tenancy_keys, |key| &key.allocated_by),
                &column(tenancy_keys, |key| &key.id),
            ],
        ),
        (
            "DELETE FROM goldthread.vulnerability_record v
              USING unnest($1::text[], $2::text[]) AS k(source, vulnerability_id)
              WHERE (v.source, v.vulnerability_id) = (k.source, k.vulnerability_id)",
            &[
                &column(vulnerability_keys, |key| &key.allocated_by),
                &column(vulnerability_keys, |key| &key.id),
            ],
        ),
    ];
    for (sql, params) in deletes {
        transaction.execute(sql, params).await?;
    }
    copy_rows(
        transaction,
        "golden_person",
        "golden_id, title, given_name, middle_name, family_name, date_of_birth, nino, phone, \
         email, postcode, sources, lineage",
        &snapshot.persons,
        |golden| {
            vec![
                Box::new(&golden.golden_id),
                Box::new(&golden.title),
                Box::new(&golden.given_name),
                Box::new(&golden.middle_name),
                Box::new(&golden.family_name),
                Box::new(golden.date_of_birth),
                Box::new(&golden.nino),
                Box::new(&golden.phone),
                Box::new(&golden.email),
                Box::new(&golden.postcode),
                Box::new(Json(&golden.sources)),
                Box::new(Json(&golden.lineage)),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "golden_property",
        "golden_id, uprn, parent_uprn, parent_golden_id, saon, paon, street, locality, town, \
         postcode, property_type, sources, lineage",
        &snapshot.properties,
        |golden| {
            vec![
                Box::new(&golden.golden_id),
                Box::new(&golden.uprn),
                Box::new(&golden.parent_uprn),
                Box::new(&golden.parent_golden_id),
                Box::new(&golden.saon),
                Box::new(&golden.paon),
                Box::new(&golden.street),
                Box::new(&golden.locality),
                Box::new(&golden.town),
                Box::new(&golden.postcode),
                Box::new(&golden.property_type),
                Box::new(Json(&golden.sources)),
                Box::new(Json(&golden.lineage)),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "match_decision",
        "entity, golden_id, source_a, source_id_a, source_b, source_id_b, decided_by, \
         probability, explanation",
        &snapshot.decisions,
        |decision| {
            vec![
                Box::new(decision.entity.as_str()),
                Box::new(&decision.golden_id),
                Box::new(&decision.a.allocated_by),
                Box::new(&decision.a.id),
                Box::new(&decision.b.allocated_by),
                Box::new(&decision.b.id),
                Box::new(decision.decided_by),
                Box::new(decision.probability),
                Box::new(&decision.explanation),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "tenancy_record",
        "source, tenancy_id, property_ref, party_refs, start_date, end_date, tenure",
        &snapshot.tenancies,
        |(reference, tenancy)| {
            vec![
                Box::new(&reference.allocated_by),
                Box::new(&reference.id),
                Box::new(&tenancy.property_ref),
                Box::new(&tenancy.party_refs),
                Box::new(tenancy.start_date),
                Box::new(tenancy.end_date),
                Box::new(&tenancy.tenure),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "vulnerability_record",
        "source, vulnerability_id, person_ref, code, description, start_date, end_date, \
         review_date",
        &snapshot.vulnerabilities,
        |(reference, vulnerability)| {
            vec![
                Box::new(&reference.allocated_by),
                Box::new(&reference.id),
                Box::new(&vulnerability.person_ref),
                Box::new(&vulnerability.code),
                Box::new(&vulnerability.description),
                Box::new(vulnerability.start_date),
                Box::new(vulnerability.end_date),
                Box::new(vulnerability.review_date),
            ]
        },
    )
    .await?;
    // The review queue and the verdicts are small and written whole.
    transaction
        .batch_execute("TRUNCATE goldthread.review_queue, goldthread.steward_verdict")
        .await?;
    for (table, rows) in [
        ("review_queue", &snapshot.review),
        ("steward_verdict", &snapshot.verdicts),
    ] {
        transaction
            .execute(
                &format!(
                    "INSERT INTO goldthread.{table}
                     SELECT * FROM jsonb_populate_recordset(NULL::goldthread.{table}, $1)"
                ),
                &[rows],
            )
            .await
            .with_context(|| format!("writing goldthread.{table}"))?;
    }
    Ok(())
}

fn column<'a, T>(rows: &'a [T], field: impl Fn(&'a T) -> &'a str) -> Vec<&'a str> {
    rows.iter().map(field).collect()
}

/// A row's values for `copy_rows`, in the order of its columns.
type Cells<'a> = Vec<Box<dyn ToSql + Sync + Send + 'a>>;

/// Appends rows to `goldthread.<table>` with binary `COPY`: `cells` gives a row's values in
/// the order of `columns`, whose types are read from the table.
async fn copy_rows<'a, T>(
    transaction: &tokio_postgres::Transaction<'_>,
    table: &str,
    columns: &str,
    rows: &'a [T],
    cells: impl Fn(&'a T) -> Cells<'a>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let types: Vec<Type> = transaction
        .prepare(&format!("SELECT {columns} FROM goldthread.{table}"))
        .await
        .with_context(|| format!("writing goldthread.{table}"))?
        .columns()
        .iter()
        .map(|column| column.type_().clone())
        .collect();
    let sink = transaction
        .copy_in(&format!(
            "COPY goldthread.{table} ({columns}) FROM STDIN BINARY"
        ))
        .await
        .with_context(|| format!("writing goldthread.{table}"))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for row in rows {
        let values = cells(row);
        let values: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| &**value as &(dyn ToSql + Sync))
            .collect();
        writer
            .as_mut()
            .write(&values)
            .await
            .with_context(|| format!("writing goldthread.{table}"))?;
    }
    writer
        .finish()
        .await
        .with_context(|| format!("writing goldthread.{table}"))?;
    Ok(())
}

/// A row of `goldthread.match_decision`: a link inside a golden record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub entity: Entity,
    pub golden_id: String,
    pub a: Reference,
    pub b: Reference,
    pub decided_by: &'static str,
    pub probability: Option<f64>,
    pub explanation: Value,
}

/// The rows a write replaces, from the hub's state and what changed in it: the golden
/// records, decisions, cross-reference, redirects, tenancies and vulnerabilities that changed
/// (ids and keys to delete, rows to insert), and the small tables whole (review queue,
/// steward verdicts).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub person_ids: Vec<String>,
    pub persons: Vec<crate::GoldenPerson>,
    pub property_ids: Vec<String>,
    pub properties: Vec<crate::GoldenProperty>,
    pub decisions: Vec<Decision>,
    /// The records whose xref rows are replaced, and those rows now.
    pub records: Vec<(Entity, Reference)>,
    pub xref: Vec<(Entity, Reference, String)>,
    pub tenancy_keys: Vec<Reference>,
    pub tenancies: Vec<(Reference, Tenancy)>,
    pub vulnerability_keys: Vec<Reference>,
    pub vulnerabilities: Vec<(Reference, Vulnerability)>,
    /// The redirects through a changed id, as they are now.
    pub redirects: Vec<(Entity, String, String)>,
    pub review: Value,
    pub verdicts: Value,
}

impl Snapshot {
    pub fn of(hub: &Hub, changes: &Changes) -> Result<Snapshot> {
        // Only ids live now get rows (an absorbed id resolves to its survivor, which has an
        // entry of its own when it changed).
        let persons: Vec<crate::GoldenPerson> = changes
            .persons
            .iter()
            .filter_map(|id| {
                hub.golden_person(id)
                    .filter(|golden| &golden.golden_id == id)
            })
            .collect();
        let properties: Vec<crate::GoldenProperty> = changes
            .properties
            .iter()
            .filter_map(|id| {
                hub.golden_property(id)
                    .filter(|golden| &golden.golden_id == id)
            })
            .collect();
        let live = persons
            .iter()
            .map(|golden| (Entity::Person, &golden.golden_id))
            .chain(
                properties
                    .iter()
                    .map(|golden| (Entity::Property, &golden.golden_id)),
            );
        let mut decisions = Vec::new();
        for (entity, golden_id) in live {
            for link in hub.explain(entity, golden_id).unwrap_or_default() {
                let explanation = match &link.score {
                    Some(score) => serde_json::to_value(score)?,
                    None => json!({"key": link.key}),
                };
                decisions.push(Decision {
                    entity,
                    golden_id: golden_id.clone(),
                    probability: link.score.as_ref().map(|score| score.probability),
                    a: link.a,
                    b: link.b,
                    decided_by: link.decided_by,
                    explanation,
                });
            }
        }
        let mut records = Vec::new();
        let mut xref = Vec::new();
        for (entity, references) in [
            (Entity::Person, &changes.person_records),
            (Entity::Property, &changes.property_records),
        ] {
            for reference in references {
                records.push((entity, reference.clone()));
                xref.extend(
                    hub.golden_ids_of(reference)
                        .into_iter()
                        .filter(|(kind, _)| *kind == entity.as_str())
                        .map(|(_, golden_id)| (entity, reference.clone(), golden_id.to_string())),
                );
            }
        }
        let tenancies = changes
            .tenancies
            .iter()
            .filter_map(|reference| Some((reference.clone(), hub.tenancy(reference)?.clone())))
            .collect();
        let vulnerabilities = changes
            .vulnerabilities
            .iter()
            .filter_map(|reference| {
                Some((reference.clone(), hub.vulnerability(reference)?.clone()))
            })
            .collect();
        let review = hub
            .review_queue()
            .into_iter()
            .map(|item| {
                json!({
                    "entity": item.entity.as_str(),
                    "source_a": item.a.allocated_by, "source_id_a": item.a.id,
                    "golden_id_a": item.golden_a,
                    "source_b": item.b.allocated_by, "source_id_b": item.b.id,
                    "golden_id_b": item.golden_b,
                    "probability": item.score.probability,
                    "explanation": item.score,
                })
            })
            .collect();
        let redirects = hub.redirects_changed(changes);
        let verdicts = hub
            .verdicts()
            .into_iter()
            .map(|verdict| {
                json!({
                    "entity": verdict.entity.as_str(),
                    "source_a": verdict.a.allocated_by, "source_id_a": verdict.a.id,
                    "source_b": verdict.b.allocated_by, "source_id_b": verdict.b.id,
                    "verdict": verdict.verdict,
                })
            })
            .collect();
        Ok(Snapshot {
            person_ids: changes.persons.clone(),
            persons,
            property_ids: changes.properties.clone(),
            properties,
            decisions,
            records,
            xref,
            tenancy_keys: changes.tenancies.clone(),
            tenancies,
            vulnerability_keys: changes.vulnerabilities.clone(),
            vulnerabilities,
            redirects,
            review,
            verdicts,
        })
    }
}
