//! A MySQL account's user name and password, shared by the SQL operations and the X protocol
//! monitor. `Debug` never shows the password.

use std::fmt;

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", Credentials::new("admin", "s3cr3t"));
        assert!(
            shown.contains("admin") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
