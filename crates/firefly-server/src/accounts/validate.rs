//! Input checks for accounts. Each collects field errors so one response names them all.

use firefly_core::FieldError;

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const NAME_MAX: usize = 64;

/// Trims and lowercases an email; emails are unique regardless of case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn check_email(errors: &mut Vec<FieldError>, field: &str, email: &str) {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid {
        errors.push(FieldError::new(field, "must be a valid email address"));
    }
}

pub fn check_password(errors: &mut Vec<FieldError>, field: &str, password: &str) {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        errors.push(FieldError::new(field, format!("must be at least {PASSWORD_MIN} characters")));
    } else if n > PASSWORD_MAX {
        errors.push(FieldError::new(field, format!("must be at most {PASSWORD_MAX} characters")));
    }
}

/// A display name: trimmed, 1 to 64 characters, no control characters.
pub fn check_name(errors: &mut Vec<FieldError>, field: &str, name: &str) -> String {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > NAME_MAX {
        errors.push(FieldError::new(field, format!("must be 1 to {NAME_MAX} characters")));
    } else if name.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
    name.to_owned()
}

pub fn finish(errors: Vec<FieldError>) -> Result<(), crate::http::ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(firefly_core::Error::fields(errors).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email_ok(e: &str) -> bool {
        let mut errors = vec![];
        check_email(&mut errors, "email", e);
        errors.is_empty()
    }

    #[test]
    fn emails() {
        assert!(email_ok("a@b.co"));
        assert!(email_ok("first.last+tag@sub.example.com"));
        for bad in ["", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@@b.co", "a@.b.co", "a@b.co."] {
            assert!(!email_ok(bad), "{bad:?} accepted");
        }
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
    }

    #[test]
    fn names_and_passwords() {
        let mut errors = vec![];
        assert_eq!(check_name(&mut errors, "n", "  Ada  "), "Ada");
        check_name(&mut errors, "n", "   ");
        check_name(&mut errors, "n", &"x".repeat(65));
        check_name(&mut errors, "n", "a\u{7}b");
        check_password(&mut errors, "p", "short");
        check_password(&mut errors, "p", &"p".repeat(129));
        check_password(&mut errors, "p", "long enough");
        assert_eq!(errors.len(), 5, "{errors:?}");
    }
}
