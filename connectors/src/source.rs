//! What every kind of source is (files and drop folders, Debezium topics, PostgreSQL
//! tables, webhooks): [`Source`], and [`source_config!`], which declares a kind's
//! configuration with the keys every kind shares written once.

use pipeline::EntityKind;

use crate::config::Mapping;
use crate::error::Error;

/// What every kind of source declares, whatever it reads: its name, the system whose
/// identifiers it carries, and the entities its events hold (their topics follow from
/// system and entity).
pub trait Source {
    /// The configuration section its entries are in (`sources`, `debezium`, ...).
    fn section(&self) -> &'static str;
    fn name(&self) -> &str;
    fn system(&self) -> &str;
    fn entities(&self) -> Vec<EntityKind>;
    /// Checks the entry on its own, every problem at once, each naming its key (names
    /// across entries are the caller's to compare).
    fn validate(&self) -> Result<(), Error>;
}

/// Declares the configuration of a kind of source (`[[<section>]]`): its own keys, given,
/// and the keys every kind shares, added here: `name`, `system`, `date_formats`,
/// `datetime_formats`, and how rows map onto entities, either `one_mapping` (`mapping`) or
/// `messages` (`mapping`, or `type_field` with `messages.<type>`). The table stays flat and
/// an unknown key is still refused with its line (serde's `flatten` cannot refuse unknown
/// keys). The kind implements `check(&self, &mut problems)` for its own keys; the macro
/// implements [`Source`] and `mapper()`.
macro_rules! source_config {
    ($section:literal, one_mapping, $(#[$attr:meta])* pub struct $name:ident { $($body:tt)* }) => {
        source_config!(@struct $(#[$attr])* $name {
            /// How a row maps onto the canonical entity.
            pub mapping: $crate::config::Mapping,
            $($body)*
        });
        source_config!(@source $section, $name, |source: &$name| source
            .mapping
            .entity_kind()
            .into_iter()
            .collect(), |source: &$name, problems: &mut Vec<String>| source
            .mapping
            .validate("mapping", problems));
    };
    ($section:literal, messages, $(#[$attr:meta])* pub struct $name:ident { $($body:tt)* }) => {
        source_config!(@struct $(#[$attr])* $name {
            /// The mapping of every row or message; or, with `type_field`, none.
            pub mapping: Option<$crate::config::Mapping>,
            /// Several message types: the field holding the type.
            pub type_field: Option<String>,
            /// Several message types: a mapping per type; other types are dead-lettered.
            #[serde(default)]
            pub messages: std::collections::BTreeMap<String, $crate::config::Mapping>,
            $($body)*
        });
        source_config!(@source $section, $name, |source: &$name| $crate::source::entities(
            source.mapping.iter().chain(source.messages.values())
        ), |_: &$name, _: &mut Vec<String>| {});
    };
    (@struct $(#[$attr:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Unique among sources; labels metrics and dead letters.
            pub name: String,
            /// The system that allocated the ids (`hms`, `crm`, `repairs`, `asset`): the
            /// HACT `allocatedBy`, and the middle part of the topic name.
            pub system: String,
            /// chrono strftime formats tried in order for date fields (`%d/%m/%Y`).
            #[serde(default = "crate::source::default_date_formats")]
            pub date_formats: Vec<String>,
            /// Formats tried for instants after RFC 3339 (`%d/%m/%Y %H:%M`); naive times
            /// are UTC.
            #[serde(default)]
            pub datetime_formats: Vec<String>,
            $($body)*
        }

        impl $name {
            /// What maps its rows (`crate::mapping::Mapper`).
            pub(crate) fn mapper(&self) -> $crate::mapping::Mapper<'_> {
                $crate::mapping::Mapper {
                    name: &self.name,
                    system: &self.system,
                    date_formats: &self.date_formats,
                    datetime_formats: &self.datetime_formats,
                }
            }
        }
    };
    (@source $section:literal, $name:ident, $entities:expr, $mapping:expr) => {
        impl $crate::source::Source for $name {
            fn section(&self) -> &'static str {
                $section
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn system(&self) -> &str {
                &self.system
            }
            fn entities(&self) -> Vec<pipeline::EntityKind> {
                $entities(self)
            }
            fn validate(&self) -> Result<(), $crate::Error> {
                let mut problems = Vec::new();
                $crate::source::check_shared(&self.name, &self.system, &self.date_formats, &mut problems);
                $mapping(self, &mut problems);
                self.check(&mut problems);
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err($crate::Error::config(&self.name, problems.join("; ")))
                }
            }
        }
    };
}

pub(crate) fn default_date_formats() -> Vec<String> {
    vec!["%Y-%m-%d".into()]
}

/// The checks of the keys every kind shares.
pub(crate) fn check_shared(
    name: &str,
    system: &str,
    date_formats: &[String],
    problems: &mut Vec<String>,
) {
    if name.trim().is_empty() {
        problems.push("name: must not be empty".into());
    }
    if system.is_empty()
        || !system
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problems.push(format!(
            "system: `{system}` must be letters, digits, `_` or `-`"
        ));
    }
    if date_formats.is_empty() {
        problems.push("date_formats: must list at least one format".into());
    }
}

/// The entities some mappings make, each once.
pub(crate) fn entities<'a>(mappings: impl Iterator<Item = &'a Mapping>) -> Vec<EntityKind> {
    let mut kinds: Vec<EntityKind> = mappings.filter_map(Mapping::entity_kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}
