//! Per-provider access rules: who may sign in at all. Checked after the provider has said
//! who the user is and before any user or session is created.
use super::profile::Profile;
use crate::config::types::AccessRules;

/// Checks the email rules. When any email rule is set, the user needs a *verified* email that
/// is listed or whose domain is listed.
pub fn check_email(rules: &AccessRules, profile: &Profile) -> Result<(), String> {
    if rules.allowed_emails.is_empty() && rules.allowed_email_domains.is_empty() {
        return Ok(());
    }
    let Some(email) = profile.email.as_deref().filter(|_| profile.email_verified) else {
        return Err("an allowed-email rule is set and the provider gave no verified email".into());
    };
    let email = email.to_ascii_lowercase();
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let listed = rules.allowed_emails.contains(&email);
    let domain_listed = rules.allowed_email_domains.iter().any(|d| d == domain);
    if listed || domain_listed {
        Ok(())
    } else {
        Err(format!(
            "email domain {domain:?} is not allowed for this provider"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(email: &str, verified: bool) -> Profile {
        Profile {
            subject: "1".into(),
            email: Some(email.into()),
            email_verified: verified,
            name: None,
            image: None,
            sid: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn rules() {
        let open = AccessRules::default();
        assert!(check_email(&open, &profile("a@evil.test", false)).is_ok());
        let rules = AccessRules {
            allowed_email_domains: vec!["corp.test".into()],
            allowed_emails: vec!["guest@partner.test".into()],
            allowed_orgs: vec![],
        };
        assert!(check_email(&rules, &profile("Ann@Corp.test", true)).is_ok());
        assert!(check_email(&rules, &profile("guest@partner.test", true)).is_ok());
        assert!(check_email(&rules, &profile("other@partner.test", true)).is_err());
        assert!(
            check_email(&rules, &profile("ann@corp.test", false)).is_err(),
            "unverified"
        );
        assert!(
            check_email(&rules, &profile("ann@sub.corp.test", true)).is_err(),
            "exact domain"
        );
        assert!(check_email(&rules, &profile("ann@corp.test.evil", true)).is_err());
    }
}
