//! The steward audit trail: who changed which golden records, when and why. Source
//! references, not personal data.

use pipeline::Reference;
use serde::{Deserialize, Serialize};

use crate::Entity;

/// One steward action: who did what, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: chrono::DateTime<chrono::Utc>,
    pub who: String,
    /// The role the caller's token held (`steward`, `admin`).
    pub role: String,
    pub action: String,
    pub entity: Entity,
    pub records: Vec<Reference>,
    pub reason: String,
    /// Golden ids whose membership the action changed.
    pub affected: Vec<String>,
}
