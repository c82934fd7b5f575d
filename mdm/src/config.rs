//! `[mdm]`: matching and survivorship settings.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdmConfig {
    /// Source systems in order of trust: a golden attribute comes from the most trusted
    /// source that has a value (then the most recently received). Unlisted systems rank last.
    pub source_priority: Vec<String>,
}

impl Default for MdmConfig {
    fn default() -> Self {
        MdmConfig {
            source_priority: vec!["hms".into(), "asset".into(), "crm".into()],
        }
    }
}

impl MdmConfig {
    /// The rank of a system (lower is more trusted).
    pub fn rank(&self, system: &str) -> usize {
        self.source_priority
            .iter()
            .position(|name| name == system)
            .unwrap_or(self.source_priority.len())
    }
}
