//! `[[sources]]`: how a file export maps onto canonical events. This is the contract a merger
//! project uses to load any legacy extract; `config/sources.md` documents it with examples.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pipeline::EntityKind;
use serde::Deserialize;

use crate::error::Error;

source_config!(
    "sources",
    messages,
    /// One file source: a CSV file (one `mapping`) or JSON lines (one `mapping`, or
    /// `type_field` with `messages.<type>`).
    pub struct SourceConfig {
        /// The file, relative to `data_dir`; or a drop folder's files, with one `*` in the
        /// file name (`drops/tenants-*.csv`): each matching file is read once, in name order.
        pub path: PathBuf,
        /// With a `*` path: look for new files this often while `run` serves (`30s`).
        #[serde(default, with = "humantime_serde")]
        pub watch: Option<std::time::Duration>,
        /// Set by `expand` on each file of a drop folder: read once, remembered by file name.
        #[serde(skip)]
        pub dropped: bool,
        /// `csv` or `jsonl`.
        pub format: Format,
        /// CSV only: the field delimiter, one character.
        #[serde(default = "default_delimiter")]
        pub delimiter: char,
    }
);

/// How one kind of row becomes one canonical entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The canonical entity: person, tenancy, property, repair_request, work_order,
    /// work_order_update, appointment, visit, vulnerability.
    pub entity: String,
    /// The source column (CSV) or dotted JSON path holding the record's own id.
    pub id: String,
    /// Canonical field name = source column or dotted JSON path (`priority = "priority.code"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Optional source column holding when the source system recorded the row.
    pub recorded_at: Option<String>,
    /// Persons and properties: other identifiers, name = source column
    /// (`legacy_ref = "OLD_TENANT_NO"`). Matching compares each as a code (one typo
    /// allowed) and blocks on it; the same name in two sources is the same scheme.
    #[serde(default)]
    pub identifiers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

fn default_delimiter() -> char {
    ','
}

impl Mapping {
    pub fn entity_kind(&self) -> Option<EntityKind> {
        EntityKind::parse(&self.entity)
    }

    pub(crate) fn validate(&self, label: &str, problems: &mut Vec<String>) {
        let Some(kind) = self.entity_kind() else {
            let known: Vec<_> = EntityKind::ALL.iter().map(|kind| kind.as_str()).collect();
            problems.push(format!(
                "{label}.entity: unknown entity `{}` (known: {})",
                self.entity,
                known.join(", ")
            ));
            return;
        };
        for name in self.fields.keys() {
            if kind.field(name).is_none() {
                let known: Vec<_> = kind.fields().iter().map(|field| field.name).collect();
                problems.push(format!(
                    "{label}.fields.{name}: `{name}` is not a {kind} field (known: {})",
                    known.join(", ")
                ));
            }
        }
        if !self.identifiers.is_empty()
            && !matches!(kind, EntityKind::Person | EntityKind::Property)
        {
            problems.push(format!(
                "{label}.identifiers: only person and property mappings take identifiers"
            ));
        }
        for name in self.identifiers.keys() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                problems.push(format!(
                    "{label}.identifiers.{name}: a name is lower-case letters, digits and `_`"
                ));
            }
        }
        for spec in kind.fields().iter().filter(|spec| spec.required) {
            if !self.fields.contains_key(spec.name) {
                problems.push(format!(
                    "{label}.fields: required {kind} field `{}` is not mapped",
                    spec.name
                ));
            }
        }
    }
}

/// JSON messages (a JSON lines file, a webhook) map with one `mapping` for all, or with
/// `type_field` and a mapping per message type. Validates the mappings; false when the
/// combination itself is wrong (the caller says how, in its own terms).
pub(crate) fn validate_messages(
    mapping: Option<&Mapping>,
    type_field: Option<&String>,
    messages: &BTreeMap<String, Mapping>,
    problems: &mut Vec<String>,
) -> bool {
    match (mapping, type_field, messages.is_empty()) {
        (Some(mapping), None, true) => mapping.validate("mapping", problems),
        (None, Some(_), false) => {
            for (message_type, mapping) in messages {
                mapping.validate(&format!("messages.{message_type}"), problems);
            }
        }
        _ => return false,
    }
    true
}

impl SourceConfig {
    /// Checks its own keys (`Source::validate` checks the shared ones).
    fn check(&self, problems: &mut Vec<String>) {
        match self.format {
            Format::Csv => match (&self.mapping, &self.type_field, self.messages.is_empty()) {
                (Some(mapping), None, true) => mapping.validate("mapping", problems),
                _ => problems.push("mapping: a csv source needs exactly one `mapping` (and no `type_field`/`messages`)".into()),
            },
            Format::Jsonl => {
                if !validate_messages(
                    self.mapping.as_ref(),
                    self.type_field.as_ref(),
                    &self.messages,
                    problems,
                ) {
                    problems.push("a jsonl source needs either one `mapping`, or `type_field` with `messages.<type>` mappings".into());
                }
            }
        }
        let stars = self.path.to_string_lossy().matches('*').count();
        let in_name = self
            .path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().contains('*'));
        if stars > 1 || (stars == 1 && !in_name) {
            problems.push(format!(
                "path: `{}`: at most one `*`, in the file name",
                self.path.display()
            ));
        }
        if self.watch.is_some() && stars == 0 {
            problems.push("watch: only for a path with a `*` (a drop folder)".into());
        }
    }

    /// For a drop folder's file: the key remembering it was read (`<name>/<file name>`).
    pub fn drop_key(&self) -> Option<String> {
        let file = self.path.file_name()?.to_string_lossy();
        self.dropped.then(|| format!("{}/{file}", self.name))
    }

    /// Whether `path` names a drop folder's files (`*` in the file name).
    pub fn is_pattern(&self) -> bool {
        self.path.to_string_lossy().contains('*')
    }

    /// The files this source reads now: itself, or for a pattern one source per matching
    /// file (its `path` that file), in name order.
    pub fn expand(&self, data_dir: &std::path::Path) -> Result<Vec<SourceConfig>, Error> {
        if !self.is_pattern() {
            return Ok(vec![self.clone()]);
        }
        let pattern = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (prefix, suffix) = pattern.split_once('*').unwrap_or((&pattern, ""));
        let folder = self.path.parent().unwrap_or(std::path::Path::new(""));
        let dir = data_dir.join(folder);
        let entries = std::fs::read_dir(&dir).map_err(|error| Error::io(&dir, error))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            // A hidden name is a file still being written (rsync, editors): it is renamed
            // into place when done.
            .filter(|name| {
                !name.starts_with('.')
                    && name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            })
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| SourceConfig {
                path: folder.join(name),
                watch: None,
                dropped: true,
                ..self.clone()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source as _;

    fn parse(text: &str) -> SourceConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn csv_source_parses_and_validates() {
        let source = parse(
            r#"
            name = "hms_tenants"
            system = "hms"
            path = "hms/tenants.csv"
            format = "csv"
            date_formats = ["%d/%m/%Y"]
            [mapping]
            entity = "person"
            id = "person_ref"
            fields = { given_name = "forename", date_of_birth = "dob" }
            "#,
        );
        source.validate().unwrap();
        assert_eq!(source.entities(), vec![EntityKind::Person]);
        assert_eq!(source.delimiter, ',');
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let source = parse(
            r#"
            name = "wo"
            system = "repairs feed"
            path = "x.jsonl"
            format = "jsonl"
            type_field = "messageType"
            [messages.ScheduleRepair]
            entity = "work_order"
            id = "ref"
            fields = { colour = "c", property_ref = "p" }
            [messages.Other]
            entity = "widget"
            id = "ref"
            "#,
        );
        let message = source.validate().unwrap_err().to_string();
        for expected in [
            "source `wo`",
            "system: `repairs feed`",
            "messages.ScheduleRepair.fields.colour: `colour` is not a work_order field",
            "required work_order field `priority` is not mapped",
            "messages.Other.entity: unknown entity `widget`",
        ] {
            assert!(message.contains(expected), "{expected:?} not in {message}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<SourceConfig>(
            "name='a'\nsystem='b'\npath='c'\nformat='csv'\ncolour='red'\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }
}
