//! Raw serde structs: the file as written, before `${ENV}` expansion and validation.
//! Every field is optional so that validation can report all missing keys at once.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub base_path: Option<String>,
    pub secret: Option<RawSecret>,
    pub previous_secrets: Option<RawSecretList>,
    pub trusted_origins: Option<Vec<String>>,
    pub trusted_proxies: Option<Vec<String>>,
    pub templates: Option<String>,
    // Connection bounds (config/connections.rs).
    pub header_read_timeout: Option<RawDuration>,
    pub request_timeout: Option<RawDuration>,
    pub keep_alive_timeout: Option<RawDuration>,
    pub max_connections: Option<i64>,
    pub max_connections_per_ip: Option<i64>,
    pub metrics_listen: Option<String>,
    pub error_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub signin: Option<String>,
    pub callback: Option<String>,
    pub token: Option<String>,
    pub refresh: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub url: Option<String>,
    pub session_cache: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSession {
    pub max_age: Option<RawDuration>,
    pub idle_timeout: Option<RawDuration>,
    pub update_age: Option<RawDuration>,
    pub cookie_domain: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokens {
    pub access_ttl: Option<RawDuration>,
    pub refresh_ttl: Option<RawDuration>,
    pub audience: Option<Vec<String>>,
    pub key_rotation: Option<RawDuration>,
    pub refresh_grace: Option<RawDuration>,
    pub provider_token_audience: Option<String>,
    pub introspection_clients: Option<std::collections::BTreeMap<String, String>>,
}

/// `[providers.<id>]`: the keys every provider has, declared once, here. The key lists
/// (`latch presets`, "valid keys", unknown-key errors) are read from this declaration
/// ([`keys_of`]), in this order; a preset's own keys are declared in its file and kept in
/// [`RawTable::own`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub preset: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<RawSecret>,
    pub issuer: Option<String>,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub link_by_email: Option<bool>,
    pub expose_tokens: Option<bool>,
    /// Sign-out also ends the session at the provider (RP-Initiated Logout); OpenID only.
    pub federated_signout: Option<bool>,
    /// The ID-token / userinfo claim that lists the user's groups (OpenID providers).
    pub groups_claim: Option<String>,
    pub timeout: Option<RawDuration>,
    pub max_response_bytes: Option<i64>,
    pub token_endpoint_auth_method: Option<String>,
    pub response_mode: Option<String>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub allowed_emails: Option<Vec<String>>,
    /// Presets that check organisation membership (github).
    pub allowed_orgs: Option<Vec<String>>,
    pub logo: Option<String>,
    pub authorization_params: Option<BTreeMap<String, String>>,
    // type = "oauth2" and the OAuth 2.0 presets
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub profile: Option<RawProfile>,
}

/// A provider table as written.
pub(crate) struct RawTable {
    pub raw: RawProvider,
    /// The keys set in the file besides `preset` and `type`, in its order.
    pub present: Vec<String>,
    /// The presets' own keys set in the file, with their values before `${ENV}` expansion.
    pub own: Vec<(&'static str, String)>,
}

/// The keys of a `#[derive(Deserialize)]` struct, in the order it declares them: serde hands
/// them to `deserialize_struct`, where this deserializer notes them (and goes no further).
pub(crate) fn keys_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'k>(&'k mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("keys noted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut keys));
    keys
}

/// `[providers.<id>.profile]`: dotted JSON paths into the userinfo response.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfile {
    pub id: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
}

/// A string that must never be echoed: its deserializer's errors do not quote the
/// value, and it has no `Debug`.
pub(crate) struct RawSecret(pub String);

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringVisitor {
            expected: "a string",
            hint: "a secret must be a string (e.g. \"${LATCH_SECRET}\")",
        })
        .map(RawSecret)
    }
}

/// A list of secrets; like [`RawSecret`], its errors never quote a value.
pub(crate) struct RawSecretList(pub Vec<RawSecret>);

impl<'de> Deserialize<'de> for RawSecretList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        const HINT: &str =
            "must be a list of strings (e.g. previous_secrets = [\"${OLD_LATCH_SECRET}\"])";
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Vec<RawSecret>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of secrets")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<RawSecret>()? {
                    out.push(s);
                }
                Ok(out)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(format_args!("invalid type: string; {HINT}")))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(format_args!("invalid type: boolean; {HINT}")))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(format_args!("invalid type: integer; {HINT}")))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(format_args!("invalid type: integer; {HINT}")))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(format_args!("invalid type: float; {HINT}")))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(format_args!(
                    "invalid type: table or date-time; {HINT}"
                )))
            }
        }
        d.deserialize_any(ListVisitor).map(RawSecretList)
    }
}

/// A duration string such as `"10m"`; a bare number gets a hint about units.
pub(crate) struct RawDuration(pub String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringVisitor {
            expected: "a duration string",
            hint: "a duration must be a string with a unit: ms, s, m, h or d (e.g. \"90s\", \"10m\", \"24h\", \"30d\")",
        })
        .map(RawDuration)
    }
}

struct StringVisitor {
    expected: &'static str,
    hint: &'static str,
}

impl StringVisitor {
    fn refuse<E: de::Error>(&self, what: &str) -> E {
        E::custom(format_args!("invalid type: {what}; {}", self.hint))
    }
}

impl<'de> Visitor<'de> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.expected)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(self.refuse("boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(self.refuse("integer"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(self.refuse("integer"))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<String, E> {
        Err(self.refuse("integer"))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<String, E> {
        Err(self.refuse("integer"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(self.refuse("float"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.refuse("array"))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.refuse("table or date-time"))
    }
}
