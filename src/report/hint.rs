//! Hints: what to do about an error, printed under it. One rendering for every error that
//! carries one (`  hint: ...` on its own line, indented under the message).

use std::fmt;

/// What the user can do about an error: a command to run, a setting to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint(pub String);

impl Hint {
    pub fn new(text: impl Into<String>) -> Hint {
        Hint(text.into())
    }

    /// The lines to append to an error message: a line break and the indented hint, or nothing
    /// without a hint (error variants keep theirs as `Option<String>`).
    pub fn suffix(hint: Option<&str>) -> String {
        hint.map(|h| Hint::new(h).to_string()).unwrap_or_default()
    }
}

/// `\n  hint: TEXT`: appended right after an error's message.
impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n  hint: {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_goes_on_its_own_indented_line() {
        assert_eq!(
            format!("cannot connect{}", Hint::new("check pg_hba.conf")),
            "cannot connect\n  hint: check pg_hba.conf"
        );
        assert_eq!(
            Hint::suffix(Some("run status again")),
            "\n  hint: run status again"
        );
        assert_eq!(Hint::suffix(None), "");
    }
}
