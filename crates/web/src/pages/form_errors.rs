//! A form's errors, as its page shows them beside each field.

use std::collections::BTreeMap;

use portcullis_app::FieldErrors;

/// A form's errors by field name, the first message of each.
#[derive(Debug, Default)]
pub struct Errors<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Errors<'a> {
    /// The errors of a use case's answer.
    pub fn of(errors: &'a FieldErrors) -> Self {
        let mut map = BTreeMap::new();
        for (field, message) in &errors.0 {
            map.entry(*field).or_insert(message.as_str());
        }
        Self(map)
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&'a str> {
        self.0.get(field).copied()
    }
}
