//! Segment ids: `quantum.<instance>.<name>`.

use crate::error::Error;

/// Prefix of every quantum segment id.
pub const PREFIX: &str = "quantum.";

/// Checks that a name is 1..=64 of `[A-Za-z0-9_-]` (no dots: they separate the id's parts).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// `quantum.<instance>.<name>`, after checking both parts.
pub fn os_id(instance: &str, name: &str) -> Result<String, Error> {
    check_name(instance)?;
    check_name(name)?;
    Ok(format!("{PREFIX}{instance}.{name}"))
}
