//! Config changes as the admin APIs ask for them: IncrementalAlterConfigs'
//! SET, DELETE, APPEND and SUBTRACT, and the legacy AlterConfigs' whole
//! replacement. Applying one to a resource's current overrides gives its
//! new overrides, or the first error; nothing is half applied.

use std::collections::BTreeMap;

use super::{ConfigError, Kind, list_items};

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the key.
    Set(String, String),
    /// Remove the override: the key inherits again.
    Delete(String),
    /// Add items to a list key (its inherited value if not set here).
    Append(String, String),
    /// Remove items from a list key.
    Subtract(String, String),
}

impl ConfigOp {
    /// The operation with IncrementalAlterConfigs' wire code `op`.
    pub fn from_wire(op: i8, key: String, value: Option<String>) -> Option<Self> {
        let value = value.unwrap_or_default();
        Some(match op {
            0 => Self::Set(key, value),
            1 => Self::Delete(key),
            2 => Self::Append(key, value),
            3 => Self::Subtract(key, value),
            _ => return None,
        })
    }

    fn key(&self) -> &str {
        match self {
            Self::Set(k, _) | Self::Delete(k) | Self::Append(k, _) | Self::Subtract(k, _) => k,
        }
    }
}

/// A change to one resource's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigEdit {
    /// IncrementalAlterConfigs: these operations, in order.
    Incremental(Vec<ConfigOp>),
    /// AlterConfigs: exactly these overrides, every other one removed.
    Replace(BTreeMap<String, String>),
}

/// What a resource's keys are: the checks and inherited values an edit needs.
pub trait Scope {
    /// What `key` takes, or why it cannot be set on this resource.
    fn kind(&self, key: &str) -> Result<Kind, ConfigError>;
    /// Checks `value` for `key`.
    fn check(&self, key: &str, value: &str) -> Result<(), ConfigError>;
    /// The value `key` has when this resource does not set it.
    fn inherited(&self, key: &str) -> String;
}

/// The overrides `current` becomes under `edit`.
pub fn apply(
    current: &BTreeMap<String, String>,
    edit: &ConfigEdit,
    scope: &impl Scope,
) -> Result<BTreeMap<String, String>, ConfigError> {
    match edit {
        ConfigEdit::Replace(all) => {
            let mut next = BTreeMap::new();
            for (k, v) in all {
                scope.kind(k)?;
                scope.check(k, v)?;
                // Stored as checked: the readers parse exactly this.
                next.insert(k.clone(), v.trim().to_string());
            }
            Ok(next)
        }
        ConfigEdit::Incremental(ops) => {
            let mut next = current.clone();
            for op in ops {
                apply_op(&mut next, op, scope)?;
            }
            Ok(next)
        }
    }
}

fn apply_op(next: &mut BTreeMap<String, String>, op: &ConfigOp, scope: &impl Scope) -> Result<(), ConfigError> {
    let key = op.key();
    let kind = scope.kind(key)?;
    let value = match op {
        ConfigOp::Delete(_) => {
            next.remove(key);
            return Ok(());
        }
        ConfigOp::Set(_, v) => v.trim().to_string(),
        ConfigOp::Append(_, v) | ConfigOp::Subtract(_, v) => {
            if !matches!(kind, Kind::ListOf(_)) {
                return Err(ConfigError::NotAList(key.to_string()));
            }
            let base = next.get(key).cloned().unwrap_or_else(|| scope.inherited(key));
            let mut items: Vec<&str> = list_items(&base);
            let given = list_items(v);
            if matches!(op, ConfigOp::Append(..)) {
                for g in given {
                    if !items.contains(&g) {
                        items.push(g);
                    }
                }
            } else {
                items.retain(|i| !given.contains(i));
            }
            items.join(",")
        }
    };
    scope.check(key, &value)?;
    next.insert(key.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{check_value, validate_topic_config};
    use super::*;

    struct Topic;
    impl Scope for Topic {
        fn kind(&self, key: &str) -> Result<Kind, ConfigError> {
            super::super::keys::topic_key(key).map(|k| k.kind).ok_or_else(|| ConfigError::UnknownKey(key.into()))
        }
        fn check(&self, key: &str, value: &str) -> Result<(), ConfigError> {
            validate_topic_config(key, value)
        }
        fn inherited(&self, _key: &str) -> String {
            "delete".into()
        }
    }

    fn ops(list: Vec<ConfigOp>) -> ConfigEdit {
        ConfigEdit::Incremental(list)
    }

    #[test]
    fn append_and_subtract_work_on_lists_only() {
        let empty = BTreeMap::new();
        let policy = |m: &BTreeMap<String, String>| m["cleanup.policy"].clone();
        let r = apply(&empty, &ops(vec![ConfigOp::Append("cleanup.policy".into(), "compact".into())]), &Topic).unwrap();
        assert_eq!(policy(&r), "delete,compact");
        // Appending what is there changes nothing; subtracting leaves the rest.
        let again = apply(&r, &ops(vec![ConfigOp::Append("cleanup.policy".into(), "compact".into())]), &Topic).unwrap();
        assert_eq!(policy(&again), "delete,compact");
        let r = apply(&r, &ops(vec![ConfigOp::Subtract("cleanup.policy".into(), "delete".into())]), &Topic).unwrap();
        assert_eq!(policy(&r), "compact");
        // A list emptied is refused, as is appending to a number.
        let emptied = apply(&r, &ops(vec![ConfigOp::Subtract("cleanup.policy".into(), "compact".into())]), &Topic);
        assert!(matches!(emptied, Err(ConfigError::NotOneOf { .. })));
        let not_list = apply(&r, &ops(vec![ConfigOp::Append("retention.ms".into(), "5".into())]), &Topic);
        assert_eq!(not_list, Err(ConfigError::NotAList("retention.ms".into())));
        assert!(check_value("x", "compact", super::super::keys::TOPIC_KEYS[0].kind).is_ok());
    }

    #[test]
    fn an_edit_applies_whole_or_not_at_all() {
        let current: BTreeMap<_, _> = [("retention.ms".to_string(), "5".to_string())].into();
        let bad = ops(vec![ConfigOp::Delete("retention.ms".into()), ConfigOp::Set("segment.bytes".into(), "x".into())]);
        assert!(apply(&current, &bad, &Topic).is_err());
        let replace = ConfigEdit::Replace([("segment.bytes".to_string(), " 4096 ".to_string())].into());
        let r = apply(&current, &replace, &Topic).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r["segment.bytes"], "4096");
        let unknown = ConfigEdit::Replace([("bogus".to_string(), "1".to_string())].into());
        assert!(matches!(apply(&current, &unknown, &Topic), Err(ConfigError::UnknownKey(_))));
    }
}
