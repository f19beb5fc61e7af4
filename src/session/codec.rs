//! The stored form of a [`SessionRecord`]: a versioned binary encoding, so that a session
//! costs Redis about 200 bytes (key, value and bookkeeping) instead of 350–500 as JSON.
//!
//! Version 2 (written since sessions remember where they came from), every integer an
//! unsigned LEB128 varint in its shortest form:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | `0x02`, the version (records written as JSON by earlier versions start with `{`) |
//! | varint | flags: `1` email verified, `2` name, `4` email, `8` user id in 16 bytes, `16` device, `32` IPv4 address, `64` IPv6 address, `128` provider session id, `256` groups |
//! | varint | `created_at`, zigzag |
//! | varint | `last_seen - created_at`, zigzag (0 until the first extension) |
//! | 16, or varint + bytes | the user id: 16 raw bytes when it is 32 lowercase hex digits (the ids latch makes), else its length and UTF-8 |
//! | varint + bytes | provider id |
//! | varint + bytes | name, if flag `2` |
//! | varint + bytes | email, if flag `4` |
//! | 2 | device (browser and system, `session::device`), if flag `16` |
//! | 4 or 16 | the client address, if flag `32` or `64` (not both) |
//! | 8 | the hash of the provider's session id, if flag `128` |
//! | varint, then varint + bytes each | the groups, if flag `256` |
//!
//! Version 1 is the same up to the email, with the flags in one byte and only the first four
//! of them; it is still read. (A version-1 binary reads a version-2 record as
//! [`Decoded::Newer`]: during a rolling upgrade, sessions made by new instances are not seen
//! by old ones, and not dropped by them either.)
//!
//! Nothing that can be derived is stored: the expiry follows from `created_at`, `last_seen`
//! and `[session]`; the session id is the key; the picture is only ever read from the user
//! record. A record that does not decode exactly (truncated, trailing bytes, unknown flags,
//! invalid UTF-8) is unreadable; one with a later version is [`Decoded::Newer`].
use super::device::Device;
use super::{SessionOrigin, SessionProfile, SessionRecord};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V1: u8 = 1;
const V2: u8 = 2;

const VERIFIED: u64 = 1;
const NAME: u64 = 2;
const EMAIL: u64 = 4;
const HEX_USER_ID: u64 = 8;
const DEVICE: u64 = 16;
const IPV4: u64 = 32;
const IPV6: u64 = 64;
const PROVIDER_SID: u64 = 128;
const GROUPS: u64 = 256;
const V1_FLAGS: u64 = VERIFIED | NAME | EMAIL | HEX_USER_ID;
const V2_FLAGS: u64 = V1_FLAGS | DEVICE | IPV4 | IPV6 | PROVIDER_SID | GROUPS;

#[derive(Debug)]
pub enum Decoded {
    Record(SessionRecord),
    /// Written by a later version (a version byte above 1): not this version's to drop.
    Newer,
    Unreadable,
}

pub fn encode(r: &SessionRecord) -> Vec<u8> {
    let p = &r.profile;
    let o = &r.origin;
    let hex_id = hex_user_id(&r.user_id);
    let mut flags = 0;
    for (set, flag) in [
        (p.email_verified, VERIFIED),
        (p.name.is_some(), NAME),
        (p.email.is_some(), EMAIL),
        (hex_id.is_some(), HEX_USER_ID),
        (o.device.is_some(), DEVICE),
        (matches!(o.ip, Some(IpAddr::V4(_))), IPV4),
        (matches!(o.ip, Some(IpAddr::V6(_))), IPV6),
        (o.provider_sid.is_some(), PROVIDER_SID),
        (!r.groups.is_empty(), GROUPS),
    ] {
        if set {
            flags |= flag;
        }
    }
    let texts = [&p.name, &p.email];
    let mut out = Vec::with_capacity(
        48 + r.user_id.len()
            + r.provider.len()
            + texts
                .iter()
                .map(|t| t.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + r.groups.iter().map(|g| g.len() + 1).sum::<usize>(),
    );
    out.push(V2);
    varint(&mut out, flags);
    varint(&mut out, zigzag(r.created_at));
    varint(&mut out, zigzag(r.last_seen.wrapping_sub(r.created_at)));
    match hex_id {
        Some(bytes) => out.extend_from_slice(&bytes),
        None => text(&mut out, &r.user_id),
    }
    text(&mut out, &r.provider);
    for value in [&p.name, &p.email].into_iter().flatten() {
        text(&mut out, value);
    }
    if let Some(device) = o.device {
        out.extend_from_slice(&device.to_bytes());
    }
    match o.ip {
        Some(IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
        Some(IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
        None => {}
    }
    if let Some(sid_hash) = &o.provider_sid {
        out.extend_from_slice(sid_hash);
    }
    if !r.groups.is_empty() {
        varint(&mut out, r.groups.len() as u64);
        for group in &r.groups {
            text(&mut out, group);
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Decoded {
    match bytes.first() {
        Some(&V1) => {
            decode_body(&bytes[1..], V1_FLAGS).map_or(Decoded::Unreadable, Decoded::Record)
        }
        Some(&V2) => {
            decode_body(&bytes[1..], V2_FLAGS).map_or(Decoded::Unreadable, Decoded::Record)
        }
        // JSON (`{`) is for the caller; other printable bytes are not a version.
        Some(&v) if v > V2 && v < b' ' => Decoded::Newer,
        _ => Decoded::Unreadable,
    }
}

/// A record after its version byte; `known` are the flags of that version. (Version 1's
/// flags byte is below `0x80`, so it reads as a one-byte varint.)
fn decode_body(bytes: &[u8], known: u64) -> Option<SessionRecord> {
    let mut r = Reader(bytes);
    let flags = r.varint()?;
    if flags & !known != 0 || flags & (IPV4 | IPV6) == IPV4 | IPV6 {
        return None;
    }
    let created_at = unzigzag(r.varint()?);
    let last_seen = created_at.wrapping_add(unzigzag(r.varint()?));
    let user_id = if flags & HEX_USER_ID != 0 {
        let mut digits = [0u8; 32];
        hex::encode_to_slice(r.take(16)?, &mut digits).ok()?;
        // Hex digits are ASCII (and `hex::encode` goes a char at a time: slower).
        String::from_utf8(digits.to_vec()).ok()?
    } else {
        r.text()?
    };
    let provider = r.text()?;
    let name = r.text_if(flags & NAME != 0)?;
    let email = r.text_if(flags & EMAIL != 0)?;
    let device = if flags & DEVICE != 0 {
        Some(Device::from_bytes(r.take(2)?.try_into().ok()?)?)
    } else {
        None
    };
    let ip = if flags & IPV4 != 0 {
        let octets: [u8; 4] = r.take(4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(octets)))
    } else if flags & IPV6 != 0 {
        let octets: [u8; 16] = r.take(16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(octets)))
    } else {
        None
    };
    let provider_sid = if flags & PROVIDER_SID != 0 {
        Some(r.take(8)?.try_into().ok()?)
    } else {
        None
    };
    let groups = if flags & GROUPS != 0 {
        let count = usize::try_from(r.varint()?).ok()?;
        // A group costs at least one byte: a count beyond the bytes left is not a record.
        if count == 0 || count > r.0.len() {
            return None;
        }
        (0..count).map(|_| r.text()).collect::<Option<Vec<_>>>()?
    } else {
        Vec::new()
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(SessionRecord {
        user_id,
        provider,
        created_at,
        last_seen,
        profile: SessionProfile {
            name,
            email,
            email_verified: flags & VERIFIED != 0,
        },
        origin: SessionOrigin {
            device,
            ip,
            provider_sid,
        },
        groups,
    })
}

/// The 16 bytes of a 32-digit lowercase hex id (what `identity` makes), so that it reads
/// back as the same string.
fn hex_user_id(id: &str) -> Option<[u8; 16]> {
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(id, &mut out).ok()?;
    Some(out)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None; // more than 64 bits
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // The shortest form only, so that a record has one encoding.
                return (b != 0 || shift == 0).then_some(v);
            }
        }
        None
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    /// A text when its flag is set: `Some(None)` when it is not, `None` when unreadable.
    fn text_if(&mut self, present: bool) -> Option<Option<String>> {
        if present {
            self.text().map(Some)
        } else {
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(user_id: &str) -> SessionRecord {
        SessionRecord {
            user_id: user_id.into(),
            provider: "google".into(),
            created_at: 1_764_000_000,
            last_seen: 1_764_086_400,
            profile: SessionProfile {
                name: Some("Ada Lovelace-Byron".into()),
                email: Some("ada.lovelace.byron@gmail.com".into()),
                email_verified: true,
            },
            origin: SessionOrigin::default(),
            groups: Vec::new(),
        }
    }

    fn same(a: &SessionRecord, b: &SessionRecord) -> bool {
        (
            &a.user_id,
            &a.provider,
            a.created_at,
            a.last_seen,
            &a.profile,
            &a.origin,
            &a.groups,
        ) == (
            &b.user_id,
            &b.provider,
            b.created_at,
            b.last_seen,
            &b.profile,
            &b.origin,
            &b.groups,
        )
    }

    fn decoded(bytes: &[u8]) -> Option<SessionRecord> {
        match decode(bytes) {
            Decoded::Record(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn a_google_session_is_small() {
        let r = record("0cb4170156c0a38b4827024bf5fb9698");
        let bytes = encode(&r);
        // 1 + 1 + 5 + 3 + 16 + 7 + 19 + 29; as JSON it was 4 times as long.
        assert_eq!(bytes.len(), 81);
        assert!(same(&decoded(&bytes).unwrap(), &r));
        assert_eq!(u64::from(bytes[1]) & HEX_USER_ID, HEX_USER_ID);
        // Where it came from costs 2 bytes of device, 4 (IPv4) or 16 (IPv6) of address, and 8
        // of provider session id; the flags then take two bytes (128 and up).
        let mut r = r;
        r.origin = SessionOrigin {
            device: Device::from_user_agent(Some(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/131.0.0.0 Safari/537.36",
            )),
            ip: Some("2001:db8::7".parse().unwrap()),
            provider_sid: Some(crate::session::provider_sid_hash(
                "08a5019c-17e1-4977-8f42-65a12843ea02",
            )),
        };
        let bytes = encode(&r);
        assert_eq!(bytes.len(), 81 + 1 + 2 + 16 + 8);
        assert!(same(&decoded(&bytes).unwrap(), &r));
    }

    /// Records written by the version before (no origin, flags in one byte) still read.
    #[test]
    fn version_1_records_still_read() {
        let r = record("0cb4170156c0a38b4827024bf5fb9698");
        let mut v1 = encode(&r);
        v1[0] = V1;
        assert!(same(&decoded(&v1).unwrap(), &r));
        // Version 1 had no origin flags.
        let mut with_device = r.clone();
        with_device.origin.device = Device::from_user_agent(Some("Firefox/1 Linux"));
        let mut v1 = encode(&with_device);
        v1[0] = V1;
        assert!(decoded(&v1).is_none());
    }

    #[test]
    fn groups_round_trip_and_a_bad_count_is_unreadable() {
        let mut r = record("u1");
        r.groups = vec!["/staff".into(), "acme/web".into(), "".into()];
        let bytes = encode(&r);
        assert!(same(&decoded(&bytes).unwrap(), &r));
        // The count byte sits before the three texts (7 + 9 + 1 bytes) at the end.
        let at = bytes.len() - 17 - 1;
        assert_eq!(bytes[at], 3);
        for count in [0u8, 4, 100] {
            let mut bad = bytes.clone();
            bad[at] = count;
            assert!(decoded(&bad).is_none(), "count {count}");
        }
    }

    #[test]
    fn an_origin_round_trips_in_every_shape() {
        let ips: [Option<IpAddr>; 3] = [
            None,
            Some("203.0.113.7".parse().unwrap()),
            Some("2001:db8::1".parse().unwrap()),
        ];
        for ip in ips {
            for device in [
                None,
                Device::from_user_agent(Some("iPhone Version/18 Safari/604.1")),
            ] {
                for provider_sid in [
                    None,
                    Some(crate::session::provider_sid_hash(
                        "08a5019c-17e1-4977-8f42-65a12843ea02",
                    )),
                ] {
                    let mut r = record("u1");
                    r.origin = SessionOrigin {
                        device,
                        ip,
                        provider_sid,
                    };
                    let back = decoded(&encode(&r)).unwrap();
                    assert!(same(&back, &r), "{:?}", r.origin);
                }
            }
        }
    }

    #[test]
    fn other_user_ids_and_missing_fields_round_trip() {
        for id in ["0CB4170156C0A38B4827024BF5FB9698", "u1", "", "é", "0cb4"] {
            for (name, email) in [(None, None), (Some("A"), None), (None, Some("a@x.test"))] {
                let mut r = record(id);
                r.profile.name = name.map(str::to_string);
                r.profile.email = email.map(str::to_string);
                r.profile.email_verified = email.is_some();
                let back = decoded(&encode(&r)).unwrap();
                assert!(same(&back, &r), "{id} {name:?} {email:?}");
            }
        }
    }

    #[test]
    fn anything_but_an_exact_record_is_unreadable() {
        let bytes = encode(&record("u1"));
        for cut in 0..bytes.len() {
            assert!(decoded(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decoded(&longer).is_none(), "trailing byte");
        // A flag this version does not know (256, a two-byte varint), or both address kinds.
        let mut flags = bytes.clone();
        flags.splice(1..2, [bytes[1] | 0x80, 0x02]);
        assert!(decoded(&flags).is_none(), "unknown flag");
        let mut both = record("u1");
        both.origin.ip = Some("203.0.113.7".parse().unwrap());
        let mut both = encode(&both);
        both[1] |= IPV6 as u8;
        both.extend_from_slice(&[0; 12]);
        assert!(decoded(&both).is_none(), "IPv4 and IPv6");
        assert!(matches!(
            decode(b"{\"user_id\":\"u1\"}"),
            Decoded::Unreadable
        ));
        assert!(matches!(decode(b""), Decoded::Unreadable));
        // A later version is left to that version.
        let mut v3 = bytes.clone();
        v3[0] = 3;
        assert!(matches!(decode(&v3), Decoded::Newer));

        let created = 2..7; // 1_764_000_000 zigzagged takes 5 bytes
        let with_created = |varint: &[u8]| {
            let mut b = bytes[..created.start].to_vec();
            b.extend_from_slice(varint);
            b.extend_from_slice(&bytes[created.end..]);
            b
        };
        assert_eq!(decoded(&with_created(&[0x00])).unwrap().created_at, 0);
        // 0 in two bytes is not a second encoding of a record; nor is a varint over 64 bits.
        assert!(decoded(&with_created(&[0x80, 0x00])).is_none());
        let mut huge = vec![0xff; 9];
        huge.push(0x02);
        assert!(decoded(&with_created(&huge)).is_none());
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(decoded(&with_created(&max)).unwrap().created_at, i64::MIN);
    }

    proptest! {
        #[test]
        fn every_record_round_trips(
            user_id in ".{0,40}",
            provider in "[a-z0-9_-]{0,20}",
            created_at in any::<i64>(),
            last_seen in any::<i64>(),
            name in proptest::option::of(".{0,40}"),
            email in proptest::option::of(".{0,40}"),
            email_verified in any::<bool>(),
            device in proptest::option::of((0u8..=15, 0u8..=8).prop_filter_map("a known device", |(b, s)| Device::from_bytes([b, s]))),
            ip in proptest::option::of(any::<IpAddr>()),
            provider_sid in proptest::option::of(any::<[u8; 8]>()),
            groups in proptest::collection::vec(".{0,20}", 0..5),
        ) {
            let r = SessionRecord {
                user_id, provider, created_at, last_seen,
                profile: SessionProfile { name, email, email_verified },
                origin: SessionOrigin { device, ip, provider_sid },
                groups,
            };
            let back = decoded(&encode(&r)).expect("decodes");
            prop_assert!(same(&back, &r));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&bytes);
        }
    }
}
