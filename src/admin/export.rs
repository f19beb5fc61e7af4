//! `latch users export`: everything latch holds about a user, as one JSON document (a
//! GDPR/CCPA access request; README "Access and erasure requests").
use super::{time, Admin, Failure};
use crate::audit::{Event, Name};
use crate::config::AuditTarget;
use crate::identity::User;
use chrono::{SecondsFormat, Utc};
use serde_json::json;

impl Admin {
    /// `users export`: everything latch holds about `user` (GDPR/CCPA access request). Provider
    /// tokens, kept sealed for `expose_tokens` providers, are left out: they are the
    /// provider's credentials, not data about the user.
    pub async fn export(&self, user: &User) -> Result<serde_json::Value, Failure> {
        let accounts = self.users.accounts(&user.id).await?;
        let sessions: Vec<_> = self
            .sessions
            .list_for_user(&user.id)
            .await?
            .iter()
            .map(|s| {
                let origin = &s.record.origin;
                json!({
                    "id": s.id,
                    "provider": s.record.provider,
                    "device": origin.device.map(|d| d.name()),
                    "ip": origin.ip.map(|ip| ip.to_string()),
                    "provider_sid_hash": origin.provider_sid.map(hex::encode),
                    "groups": s.record.groups,
                    "started": time(s.record.created_at),
                    "last_seen": time(s.record.last_seen),
                    "expires": s.expires.to_rfc3339_opts(SecondsFormat::Secs, true),
                })
            })
            .collect();
        let audit = match &self.audit_target {
            None => json!({ "source": "off", "events": [] }),
            Some(AuditTarget::Stderr) => json!({
                "source": "stderr",
                "events": [],
                "note": "the audit log goes to latch's stderr (its service manager's journal): \
                         search it there for this user_id",
            }),
            Some(AuditTarget::File(path)) => {
                let events = crate::audit::events_for_user(path, &user.id).map_err(|e| {
                    Failure::new(format!(
                        "cannot read the audit file {}: {e}",
                        path.display()
                    ))
                })?;
                json!({ "source": path.display().to_string(), "events": events })
            }
        };
        self.record(|| Event::new(Name::AdminUserExported).user(&user.id));
        Ok(json!({
            "exported_at": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "user": user,
            "accounts": accounts,
            "sessions": sessions,
            "audit": audit,
        }))
    }
}
