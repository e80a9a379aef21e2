//! Who owns an image, without accounts.
//!
//! An uploader holds a random secret key (in a cookie, or as a bearer token);
//! thumbq keeps only its SHA-256, the [`OwnerId`], next to each image it owns.
//! A stolen data directory therefore gives no one the power to delete.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of an owner's secret key, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId([u8; 32]);

impl OwnerId {
    /// The id of whoever holds `secret`.
    pub fn of_secret(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// Compares without stopping at the first difference, so timing tells nothing.
    pub fn same_as(&self, other: &OwnerId) -> bool {
        equal_in_constant_time(&self.0, &other.0)
    }
}

/// Whether two secrets (the admin token, say) are the same, comparing their
/// SHA-256 digests every byte: the time taken tells neither how much matched
/// nor how long the secret is.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    equal_in_constant_time(&Sha256::digest(given).into(), &Sha256::digest(expected).into())
}

fn equal_in_constant_time(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// Never prints the whole hash into logs by accident.
impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Why a text is not an [`OwnerId`].
#[derive(Debug, thiserror::Error)]
#[error("an owner id is 64 lowercase hex digits")]
pub struct BadOwnerId;

impl FromStr for OwnerId {
    type Err = BadOwnerId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return Err(BadOwnerId);
        }
        let value = |digit: u8| match digit {
            b'0'..=b'9' => Ok(digit - b'0'),
            b'a'..=b'f' => Ok(digit - b'a' + 10),
            _ => Err(BadOwnerId),
        };
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = value(pair[0])? << 4 | value(pair[1])?;
        }
        Ok(Self(bytes))
    }
}

impl Serialize for OwnerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OwnerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What `owners/{id}.json` holds: who owns the image, and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub owner: OwnerId,
    /// The file name it was sent under, cleaned for display (never part of a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the upload's bytes said it is, to serve the original under its type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::SourceFormat>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_id_is_the_hex_hash_of_the_secret_and_parses_back() {
        let owner = OwnerId::of_secret(b"abc");
        assert_eq!(owner.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(owner.to_string().parse::<OwnerId>().unwrap().same_as(&owner));
        assert!(!owner.same_as(&OwnerId::of_secret(b"abd")));
        for bad in ["", "../x", &owner.to_string().to_uppercase(), &format!("{owner}0")] {
            assert!(bad.parse::<OwnerId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_match_only_when_equal_whatever_their_lengths() {
        assert!(same_secret(b"a-token-long-enough", b"a-token-long-enough"));
        for given in [&b""[..], b"a", b"a-token-long-enougH", b"a-token-long-enough-and-more"] {
            assert!(!same_secret(given, b"a-token-long-enough"), "{given:?}");
        }
    }
}
