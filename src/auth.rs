//! API access control: bearer tokens with roles. Token secrets come from environment variables
//! named in the configuration, never from the file itself, and never reach the logs.

use serde::{Deserialize, Serialize};

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A contractor's system: may post to the `[[webhooks]]` that name its token, and read
    /// nothing.
    Contractor,
    /// KPIs, metrics and pseudonymous data (golden ids, properties).
    Viewer,
    /// Identity data, the review queue and steward decisions.
    Steward,
    /// Everything, including the audit trail.
    Admin,
}

impl Role {
    /// As configured and audited: `contractor`, `viewer`, `steward`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Contractor => "contractor",
            Role::Viewer => "viewer",
            Role::Steward => "steward",
            Role::Admin => "admin",
        }
    }
}

/// `[[http.tokens]]`: one API token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token: recorded in the audit trail as the actor.
    pub name: String,
    pub role: Role,
    /// The environment variable holding the secret; unset or empty leaves the token inactive.
    pub secret_env: String,
}

/// The caller a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The active tokens.
#[derive(Clone)]
pub struct Tokens {
    active: Vec<(Caller, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and roles only: secrets stay out of debug output and logs.
        f.debug_list()
            .entries(self.active.iter().map(|(caller, _)| caller))
            .finish()
    }
}

/// Equal bytes in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The shortest secret accepted: 16 characters (`openssl rand -hex 16` gives 32). A shorter
/// one could be guessed; the process refuses to start with it.
pub const MIN_SECRET_LENGTH: usize = 16;

impl Tokens {
    /// Reads each token's secret from its environment variable (through `lookup`, so tests need
    /// not touch the process environment). Returns the active tokens and the names of the
    /// inactive ones, or every token whose secret is shorter than [`MIN_SECRET_LENGTH`].
    pub fn load(
        configs: &[TokenConfig],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(Tokens, Vec<String>), String> {
        let mut active = Vec::new();
        let mut inactive = Vec::new();
        let mut short = Vec::new();
        for config in configs {
            match lookup(&config.secret_env).filter(|secret| !secret.is_empty()) {
                Some(secret) if secret.chars().count() < MIN_SECRET_LENGTH => short.push(format!(
                    "{} ({}: {} characters)",
                    config.name,
                    config.secret_env,
                    secret.chars().count()
                )),
                Some(secret) => active.push((
                    Caller {
                        name: config.name.clone(),
                        role: config.role,
                    },
                    secret,
                )),
                None => inactive.push(format!("{} ({} unset)", config.name, config.secret_env)),
            }
        }
        if !short.is_empty() {
            return Err(format!(
                "token secrets must have at least {MIN_SECRET_LENGTH} characters (`openssl rand -hex 16` makes one): {}",
                short.join(", ")
            ));
        }
        Ok((Tokens { active }, inactive))
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The caller an `Authorization` header value stands for.
    pub fn caller(&self, authorization: Option<&str>) -> Option<Caller> {
        let presented = authorization?.strip_prefix("Bearer ")?.trim();
        self.active
            .iter()
            .find(|(_, secret)| constant_time_eq(secret.as_bytes(), presented.as_bytes()))
            .map(|(caller, _)| caller.clone())
    }
}

/// Every problem with the token list, as messages naming the key.
pub fn problems(tokens: &[TokenConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, token) in tokens.iter().enumerate() {
        if token.name.trim().is_empty() {
            problems.push(format!("http.tokens[{index}].name: empty"));
        } else if !names.insert(token.name.as_str()) {
            problems.push(format!(
                "http.tokens[{index}].name: `{}` is used twice",
                token.name
            ));
        }
        if token.secret_env.trim().is_empty() {
            problems.push(format!("http.tokens[{index}].secret_env: empty"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_audited_as_it_is_configured() {
        for role in [Role::Contractor, Role::Viewer, Role::Steward, Role::Admin] {
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::Value::from(role.as_str())
            );
        }
    }

    fn configs() -> Vec<TokenConfig> {
        vec![
            TokenConfig {
                name: "dashboards".into(),
                role: Role::Viewer,
                secret_env: "V".into(),
            },
            TokenConfig {
                name: "ops".into(),
                role: Role::Admin,
                secret_env: "A".into(),
            },
        ]
    }

    #[test]
    fn bearer_tokens_map_to_callers_and_unset_secrets_are_inactive() {
        let short = Tokens::load(&configs(), |name| {
            (name == "V").then(|| "short".to_string())
        })
        .unwrap_err();
        assert!(short.contains("dashboards (V: 5 characters)"), "{short}");
        let (tokens, inactive) = Tokens::load(&configs(), |name| {
            (name == "V").then(|| "viewer-secret-0123".to_string())
        })
        .unwrap();
        assert_eq!(inactive, vec!["ops (A unset)".to_string()]);
        let caller = tokens.caller(Some("Bearer viewer-secret-0123")).unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.role),
            ("dashboards", Role::Viewer)
        );
        assert_eq!(tokens.caller(Some("Bearer viewer-secret-012T")), None);
        assert_eq!(tokens.caller(Some("viewer-secret-0123")), None);
        assert_eq!(tokens.caller(None), None);
        assert!(!format!("{tokens:?}").contains("viewer-secret-0123"));
        assert!(Role::Admin > Role::Steward && Role::Steward > Role::Viewer);
    }

    #[test]
    fn duplicate_names_and_empty_variables_are_problems() {
        let mut configs = configs();
        configs[1].name = "dashboards".into();
        configs[0].secret_env = " ".into();
        assert_eq!(problems(&configs).len(), 2);
    }
}
