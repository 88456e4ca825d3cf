//! The credentials prompt (`c`; its logic is in `app::update::account`): the TP-Link account
//! typed in for this session. It is kept only in the app's settings (never written to disk,
//! never logged, never drawn: the password is echoed as one `•` per character), and the
//! newer-protocol devices are re-tracked with it so they are read at once.

use crate::net::klap::Credentials;

/// Longest user name or password taken (characters): TP-Link's own limits are far below.
pub const MAX_LEN: usize = 128;

/// Which field the prompt is asking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    Password,
}

/// The open prompt. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountPrompt {
    pub field: Field,
    pub username: String,
    password: String,
    /// Why the last Enter was not taken (drawn in the prompt).
    pub error: Option<&'static str>,
}

impl std::fmt::Debug for AccountPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPrompt")
            .field("field", &self.field)
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

impl AccountPrompt {
    pub fn new() -> Self {
        AccountPrompt {
            field: Field::Username,
            username: String::new(),
            password: String::new(),
            error: None,
        }
    }

    /// How many characters of password were typed (what the prompt may show of it).
    pub fn password_len(&self) -> usize {
        self.password.chars().count()
    }

    fn current(&mut self) -> &mut String {
        match self.field {
            Field::Username => &mut self.username,
            Field::Password => &mut self.password,
        }
    }

    /// A typed character goes to the field being asked for (control characters are dropped).
    pub fn push(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        let s = self.current();
        if s.chars().count() < MAX_LEN {
            s.push(c);
        }
    }

    pub fn backspace(&mut self) {
        self.current().pop();
    }

    /// The account typed in (the user name without surrounding blanks; the password as typed).
    pub fn into_credentials(self) -> Credentials {
        Credentials::new(self.username.trim(), self.password)
    }
}

impl Default for AccountPrompt {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_bounds_fields_drops_control_characters_and_hides_the_password() {
        let mut p = AccountPrompt::new();
        for c in "me@x.org\u{7}".chars() {
            p.push(c);
        }
        assert_eq!(p.username, "me@x.org");
        p.field = Field::Password;
        for _ in 0..(MAX_LEN + 10) {
            p.push('s');
        }
        assert_eq!(p.password_len(), MAX_LEN);
        p.backspace();
        assert_eq!(p.password_len(), MAX_LEN - 1);
        let shown = format!("{p:?}");
        assert!(shown.contains("me@x.org"));
        assert!(!shown.contains("sss"), "{shown}");
    }
}
