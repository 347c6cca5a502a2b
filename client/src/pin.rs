//! A host's pinned keys as the command line gives them (`KEY[:NEXT_SHA256]`), and what following
//! a rotation did to them.

use sesame_proto::{Followed, HostPin, KeyDigest, PublicKey, RotationRefused};

/// What [`ClientHome::follow_rotation`](crate::ClientHome::follow_rotation) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Re-pinned to the new key.
    Followed(Followed),
    /// Not re-pinned: the new key cannot be verified.
    Refused(RotationRefused),
    /// Nothing to do: the host is no longer pinned to the key the answer came under (another
    /// `sesame` re-pinned it meanwhile, or it was removed).
    Stale,
}

/// Parses what `sesame host add --key` and `sesame host repin --key` take: `KEY`, or
/// `KEY:NEXT_SHA256` as `sesamed show` prints it, with the digest given at most once (in the
/// token or as `next`).
pub fn parse_pin(key: &str, next: Option<&str>) -> Result<HostPin, String> {
    let (key_text, in_token) = match key.split_once(':') {
        Some((k, d)) => (k, Some(d)),
        None => (key, None),
    };
    let key: PublicKey = key_text.parse().map_err(|e| format!("--key: {e}"))?;
    let digest = match (in_token, next) {
        (Some(_), Some(_)) => {
            return Err(
                "the next key's digest is given twice (in --key KEY:NEXT and --next-key-sha256)".into(),
            );
        }
        (Some(d), None) | (None, Some(d)) => Some(
            d.parse::<KeyDigest>()
                .map_err(|e| format!("the next key's digest: {e}"))?,
        ),
        (None, None) => None,
    };
    if digest.is_some_and(|d| d.commits_to(&key)) {
        return Err("the next key's digest is the digest of --key itself: give the one `sesamed show` prints as next key".into());
    }
    Ok(HostPin {
        key,
        next_key_sha256: digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_as_a_key_and_an_optional_digest_given_once() {
        let key = PublicKey::from_bytes([7; 32]);
        let digest = PublicKey::from_bytes([8; 32]).digest();
        let (k, d) = (key.to_string(), digest.to_string());
        let bare = parse_pin(&k, None).expect("bare");
        assert_eq!((bare.key, bare.next_key_sha256), (key, None));
        for pin in [
            parse_pin(&format!("{k}:{d}"), None),
            parse_pin(&k, Some(&d)),
            parse_pin(&format!("{k}:{}", d.to_ascii_uppercase()), None),
        ] {
            assert_eq!(pin.expect("pin").next_key_sha256, Some(digest));
        }
        for (text, next) in [
            (format!("{k}:{d}"), Some(d.as_str())),
            (format!("{k}:"), None),
            (format!("{k}:{}", &d[1..]), None),
            (format!("{}:{d}", &k[1..]), None),
            (format!("{k}:{}", key.digest()), None),
        ] {
            assert!(parse_pin(&text, next).is_err(), "{text} {next:?}");
        }
    }
}
