//! Topic name rules, as Kafka's `Topic.validate` applies them.

use thiserror::Error;

/// Kafka's limit: 249 characters, so that `<topic>-<partition>` directory
/// names fit in 255 bytes.
pub const MAX_LEN: usize = 249;

/// Why a topic name is not legal.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("topic name is {0} characters long, the limit is {MAX_LEN}")]
    TooLong(usize),
    #[error("topic name {0:?} is illegal: only ASCII alphanumerics, '.', '_' and '-' are allowed")]
    IllegalChars(String),
}

/// Checks a topic name against Kafka's rules.
pub fn validate(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > MAX_LEN {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(TopicNameError::IllegalChars(name.to_string()));
    }
    Ok(())
}

/// Whether two different names would collide where Kafka puts topic names
/// in metric names, which replace '.' with '_' (`my.topic`, `my_topic`).
pub fn collide(a: &str, b: &str) -> bool {
    a != b
        && a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| x == y || matches!((x, y), (b'.', b'_') | (b'_', b'.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        assert!(validate("test-topic_1.x").is_ok());
        assert_eq!(validate(""), Err(TopicNameError::Empty));
        assert_eq!(validate(".."), Err(TopicNameError::Dots));
        assert!(matches!(validate(&"a".repeat(250)), Err(TopicNameError::TooLong(250))));
        assert!(validate(&"a".repeat(249)).is_ok());
        assert!(matches!(validate("bad/name"), Err(TopicNameError::IllegalChars(_))));
        assert!(matches!(validate("spa ce"), Err(TopicNameError::IllegalChars(_))));
    }

    #[test]
    fn dots_and_underscores_collide() {
        assert!(collide("my.topic", "my_topic"));
        assert!(collide("a_b.c", "a.b_c"));
        assert!(!collide("my.topic", "my.topic"));
        assert!(!collide("my.topic", "my-topic"));
        assert!(!collide("ab", "a_"));
    }
}
