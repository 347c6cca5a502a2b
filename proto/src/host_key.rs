//! SSH host public keys, as a host vouches for them over the sealed channel: what the daemon
//! reads from its `ssh_host_*_key.pub` files and what `sesame known-hosts` prints for ssh.
//!
//! A [`HostKey`] is only ever made by parsing, and parsing is strict: one line of at most
//! [`MAX_HOST_KEY_LINE`] bytes, a type of [`HOST_KEY_TYPES`], and key data that is canonical
//! base64 of exactly the structure OpenSSH gives that type (its own type name first, then the
//! key's fields, nothing after them). The comment is dropped: it is the host's to know, and the
//! one part of the line a `known_hosts` reader would take as free text.

use std::fmt;
use std::str::FromStr;

/// The host key types served, as OpenSSH names them. DSA (`ssh-dss`) is not one: OpenSSH stopped
/// accepting DSA host keys by default in 7.0 and removed them in 9.8.
pub const HOST_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

/// The longest line (or `.pub` file) accepted: a 16384-bit RSA key with a long comment fits
/// in about 3 KiB.
pub const MAX_HOST_KEY_LINE: usize = 8 * 1024;

/// The RSA modulus sizes accepted, in bits (OpenSSH refuses less than 1024, makes no more
/// than 16384).
const RSA_BITS: std::ops::RangeInclusive<usize> = 1024..=16384;

/// An SSH host public key: its type and its key data (base64, as in a `.pub` file).
///
/// Parsed from `TYPE BASE64 [COMMENT]` (a `.pub` file's one line, a final newline allowed);
/// shown as `TYPE BASE64`. Keys order by type, then key data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostKey {
    kind: &'static str,
    key: String,
}

/// Why a line is not an SSH host public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostKeyError {
    /// The text is longer than [`MAX_HOST_KEY_LINE`].
    #[error("longer than {MAX_HOST_KEY_LINE} bytes")]
    TooLong,
    /// The text holds a line break (other than one at its end) or another control character.
    #[error("not one line of text")]
    NotOneLine,
    /// The text has no type, or no key data after it.
    #[error("no key type and key data")]
    Missing,
    /// The type is not one of [`HOST_KEY_TYPES`]: its name, cut to 64 characters, or `?` when
    /// it does not look like a type's name (the text may be any file's first word, and errors
    /// are logged).
    #[error("key type {0:?} is not one of {types}", types = HOST_KEY_TYPES.join(", "))]
    UnknownType(String),
    /// The key data is not canonical, padded base64.
    #[error("the key data is not base64")]
    NotBase64,
    /// The key data is base64, but not of a key of the type the line names.
    #[error("the key data is not a {kind} key: {why}")]
    Mismatch {
        /// The type the line names.
        kind: &'static str,
        /// What is wrong with the key data.
        why: &'static str,
    },
}

impl HostKey {
    /// The key type (one of [`HOST_KEY_TYPES`]).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The key data, base64.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl FromStr for HostKey {
    type Err = HostKeyError;

    fn from_str(text: &str) -> Result<Self, HostKeyError> {
        if text.len() > MAX_HOST_KEY_LINE {
            return Err(HostKeyError::TooLong);
        }
        let line = text.strip_suffix('\n').unwrap_or(text);
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(HostKeyError::NotOneLine);
        }
        let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
        let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
            return Err(HostKeyError::Missing);
        };
        // Whatever follows is the comment, dropped.
        let Some(&kind) = HOST_KEY_TYPES.iter().find(|t| **t == kind) else {
            return Err(HostKeyError::UnknownType(shown_type(kind)));
        };
        let blob = base64_decode(key).ok_or(HostKeyError::NotBase64)?;
        check_blob(kind, &blob).map_err(|why| HostKeyError::Mismatch { kind, why })?;
        Ok(Self {
            kind,
            key: key.to_owned(),
        })
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// `kind` as an error may show it: cut to 64 characters, and only if it looks like a key type's
/// name (ASCII letters, digits and `@ . _ -`), else `?`.
fn shown_type(kind: &str) -> String {
    if kind
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b'-'))
    {
        kind.chars().take(64).collect()
    } else {
        "?".to_owned()
    }
}

/// Checks that `blob` is a `kind` key as OpenSSH encodes it: its type name as an SSH string,
/// then the type's fields, and nothing after them.
fn check_blob(kind: &'static str, blob: &[u8]) -> Result<(), &'static str> {
    let mut wire = Wire(blob);
    let named = wire.string().ok_or("it is truncated")?;
    if named != kind.as_bytes() {
        return Err("it names another key type");
    }
    match kind {
        "ssh-ed25519" => {
            let public = wire.string().ok_or("it is truncated")?;
            if public.len() != 32 {
                return Err("its public key is not 32 bytes");
            }
        }
        "ssh-rsa" => {
            let exponent = wire.mpint().ok_or("its exponent is not a positive integer")?;
            let modulus = wire.mpint().ok_or("its modulus is not a positive integer")?;
            if exponent.len() > 8 || exponent.last().is_none_or(|b| b & 1 == 0) {
                return Err("its exponent is not a small odd number");
            }
            let bits = modulus.len() * 8 - modulus[0].leading_zeros() as usize;
            if !RSA_BITS.contains(&bits) {
                return Err("its modulus is not between 1024 and 16384 bits");
            }
        }
        _ => {
            // ecdsa-sha2-nistpN: the curve's name, then an uncompressed point (0x04, x, y).
            let curve = kind.strip_prefix("ecdsa-sha2-").unwrap_or(kind);
            let coordinate = match curve {
                "nistp256" => 32,
                "nistp384" => 48,
                _ => 66,
            };
            if wire.string().ok_or("it is truncated")? != curve.as_bytes() {
                return Err("it names another curve");
            }
            let point = wire.string().ok_or("it is truncated")?;
            if point.len() != 1 + 2 * coordinate || point[0] != 4 {
                return Err("its point is not an uncompressed point of the curve");
            }
        }
    }
    if !wire.0.is_empty() {
        return Err("bytes follow the key");
    }
    Ok(())
}

/// SSH wire encoding being read: strings are a big-endian `u32` length, then the bytes.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (string, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some(string)
    }

    /// A positive multiple-precision integer in its canonical form: not empty, its sign bit
    /// clear, no leading zero byte but one that keeps the sign bit clear. Returned without it.
    fn mpint(&mut self) -> Option<&'a [u8]> {
        let bytes = self.string()?;
        match bytes {
            [first, ..] if first & 0x80 != 0 => None,
            [0, second, ..] if second & 0x80 != 0 => Some(&bytes[1..]),
            [0, ..] | [] => None,
            _ => Some(bytes),
        }
    }
}

/// Decodes canonical, padded base64 (the standard alphabet, as OpenSSH writes it): the length
/// a multiple of four, `=` only as padding at the end, the bits padding leaves unused zero.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let last = bytes.len() / 4 - 1;
    for (i, quad) in bytes.chunks_exact(4).enumerate() {
        let used = if i == last { 4 - padding } else { 4 };
        let mut word = 0u32;
        for &c in &quad[..used] {
            word = (word << 6) | value(c)?;
        }
        word <<= 6 * (4 - used);
        let decoded = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        let len = used - 1;
        // Bits past the last whole byte must be zero, or two texts would read as one key.
        if decoded[len..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&decoded[..len]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real keys (ssh-keygen, OpenSSH 9.2), one of each type served.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n";
    const NISTP256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM44TwVzCFz65fzcjdOjTY5YUOaLLn/qvYM1/H6xyJ2lgyNqNc9Qt8vHrkVP1oByCE/IWUg1KVMXZMTKpLDvi34=";
    const NISTP384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBEa0frKBjQ1yUMgM2YMCVGJRqARpxsCP32iPDm7WgF/blnogYO8DzBN6yLtA897LD4ET6Pkv6gWOVEfyFNjNv98ZugsyaHofgyfl4reHmEaLBVkUHCd1LGzl8Y37bJcvfg==";
    const NISTP521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAGcQwK4dOinAh8lzN+iV8Yft58vqBdBXXlY4vEKCfXDT644WwcsAOcqH5aB4MeKe5GjpZGkiMfhL068j0J8uSWBWwAnmc62WjMGIqKbOOaF9MnP99mS/63WIIMFgsaFpFzrIhQy3dBNSkpurL1pnsiq/TXuxySWMBbthKTd5saYEpvxDQ==";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC+krC3JgtJ0lwrHOtoOZ4hqxf8LJ4mCVUwfUjxOMHw99uh3yMFJg1Y11bUSs4kDuIiLIoB5jg6JShtAtYaUlMMVZ5s1DZMo4klo6+1kh1JVbewuA+rJmW7i5vBtxAkNzG5HhOJYF5z2o9wA0pDgdv4j0Grdxc1L1d0cLTLWw5gqkTzV6yhpgNT+Fh9Z+woEwG0NnE9ZLLrgx2/240hBJXbzaolD/LSlqKbo2pFh4+8L32NfySx07/uDAOhEj15aaP8PvJ4yfwnEVzbdIvKwqroGlvSDwWLRfZY+7Eq0OevTzMEjDx7NTup3doo16t6u/FEiUE4KyxZkbXi60BUt1HD";
    const DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBAKIAlTdSUgZuMOZ0fa2BbrrXVcRyZJS7i1cLLKQChXmFXSO5EtCnPiaTu1aY+31XegIW9QGtnCHOLKTAvZYmQ/2Z8WSxtB6ML6uUep+geiAFvXbFm0G2jj3A3E3caBKbPaNqQp036bQLSO2FL09K0gR0jBrnMiK6EBZBJ4++IF59AAAAFQC6NpMmj1vRA56lYSZBX3YHw4DfgwAAAIALvDe902bjEAo0HFE1XGvBFKUYPwxfP5r7oIYKpKrIxUy20ZvOgU4oo9Yw8zaLhYJlQOo1E+Wy9BD7OaJThyvUVuyXu9ldCO1y6ir8K37Hb7b8UE+42fiawvbPHTSbgmL/Bcw/UAVf7zvOFVEhwfeMeoHJE1KadKIGxfUstn3yawAAAIBbdrzRCd1RvcAAGcXnTxgNE7m5sRucqStvRG7qKTUOS7utvAb68TucC5XM6/y4eybxitW2JNMxNLw5H1XmB2u/1zbRLJg5O/YuRfG2miZeiHU40njSM6aN3urUjBUo404R5BbPXMQbHYYmxnCumP/Xt9LCuiEdextiO9scT0j3YA==";

    fn parse(text: &str) -> Result<HostKey, HostKeyError> {
        text.parse()
    }

    /// The key data of `line`, decoded.
    fn blob(line: &str) -> Vec<u8> {
        let key = line.split(' ').nth(1).expect("key data");
        base64_decode(key).expect("base64")
    }

    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut word = 0u32;
            for (i, &b) in chunk.iter().enumerate() {
                word |= u32::from(b) << (16 - 8 * i);
            }
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((word >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// `kind` followed by `blob` in base64.
    fn line(kind: &str, blob: &[u8]) -> String {
        format!("{kind} {}", base64_encode(blob))
    }

    #[test]
    fn every_served_type_parses_and_shows_as_type_and_key() {
        for (text, kind) in [
            (ED25519, "ssh-ed25519"),
            (NISTP256, "ecdsa-sha2-nistp256"),
            (NISTP384, "ecdsa-sha2-nistp384"),
            (NISTP521, "ecdsa-sha2-nistp521"),
            (RSA, "ssh-rsa"),
        ] {
            let key = parse(text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(key.kind(), kind);
            assert_eq!(key.to_string(), text);
            assert_eq!(key.key(), &text[kind.len() + 1..]);
        }
        assert_eq!(HOST_KEY_TYPES.len(), 5, "each type is tested above");
    }

    #[test]
    fn a_pub_file_with_a_comment_with_spaces_and_a_newline_reads_as_its_key() {
        for text in [
            format!("{ED25519} root@web1 made on 2026-12-01\n"),
            format!("{ED25519}\troot@web1\n"),
            format!("{ED25519}   \n"),
            format!("{ED25519}\n"),
        ] {
            assert_eq!(
                parse(&text).map(|k| k.to_string()),
                Ok(ED25519.to_owned()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_mismatched_embedded_type_is_refused() {
        // The ed25519 key data under other types' names, and another type's data under its own.
        let data = &ED25519["ssh-ed25519 ".len()..];
        for kind in ["ssh-rsa", "ecdsa-sha2-nistp256"] {
            assert_eq!(
                parse(&format!("{kind} {data}")),
                Err(HostKeyError::Mismatch {
                    kind,
                    why: "it names another key type"
                })
            );
        }
        let p384 = &NISTP384["ecdsa-sha2-nistp384 ".len()..];
        assert!(matches!(
            parse(&format!("ecdsa-sha2-nistp256 {p384}")),
            Err(HostKeyError::Mismatch { .. })
        ));
    }

    #[test]
    fn garbage_unknown_types_and_more_than_one_line_are_refused() {
        for (text, expected) in [
            ("", HostKeyError::Missing),
            ("\n", HostKeyError::Missing),
            ("ssh-ed25519", HostKeyError::Missing),
            ("ssh-ed25519 \n", HostKeyError::Missing),
            ("-----BEGIN-OPENSSH-PRIVATE-KEY-----", HostKeyError::Missing),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                HostKeyError::UnknownType("-----BEGIN".into()),
            ),
            ("ssh-ed25519 not*base64", HostKeyError::NotBase64),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
                HostKeyError::Mismatch {
                    kind: "ssh-ed25519",
                    why: "it is truncated",
                },
            ),
            ("ssh-ed25519 =AAA", HostKeyError::NotBase64),
            ("ssh-ed25519 AAA===", HostKeyError::NotBase64),
            (
                "@cert-authority * ssh-ed25519 AAAA",
                HostKeyError::UnknownType("@cert-authority".into()),
            ),
            ("\u{0}ssh-ed25519 AAAA", HostKeyError::NotOneLine),
            ("ssh-ed25519 AAAA\r\n", HostKeyError::NotOneLine),
        ] {
            assert_eq!(parse(text), Err(expected), "{text:?}");
        }
        assert_eq!(
            parse(&format!("{ED25519} a\n{RSA} b\n")),
            Err(HostKeyError::NotOneLine)
        );
        let dsa = parse(DSA).expect_err("DSA");
        assert_eq!(dsa, HostKeyError::UnknownType("ssh-dss".into()));
        assert!(dsa.to_string().contains("is not one of ssh-ed25519, "), "{dsa}");
        let long = format!("{} x", "y".repeat(200));
        assert_eq!(parse(&long), Err(HostKeyError::UnknownType("y".repeat(64))));
        // Another file's first word (a symlink to /etc/shadow, say) is not repeated in a log.
        assert_eq!(
            parse("root:$y$j9T$secret:19000:0:99999:7::: x"),
            Err(HostKeyError::UnknownType("?".into()))
        );
    }

    #[test]
    fn a_huge_line_is_refused_before_it_is_read() {
        let huge = format!("{ED25519} {}", "c".repeat(MAX_HOST_KEY_LINE));
        assert_eq!(parse(&huge), Err(HostKeyError::TooLong));
        let fits = format!("{ED25519} {}", "c".repeat(MAX_HOST_KEY_LINE - ED25519.len() - 1));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn key_data_must_have_exactly_its_types_structure() {
        let ed = blob(ED25519);
        let mismatch = |kind: &'static str, why: &'static str| Err(HostKeyError::Mismatch { kind, why });
        let ed_why = |text: &str| parse(text).map(|_| ());
        // Truncated, or with bytes after the key.
        assert_eq!(
            ed_why(&line("ssh-ed25519", &ed[..ed.len() - 1])),
            mismatch("ssh-ed25519", "it is truncated")
        );
        assert_eq!(
            ed_why(&line("ssh-ed25519", &[&ed[..], &[0]].concat())),
            mismatch("ssh-ed25519", "bytes follow the key")
        );
        // An ed25519 public key of the wrong length.
        let mut short = ed[..15].to_vec();
        short.extend_from_slice(&31u32.to_be_bytes());
        short.extend_from_slice(&[7; 31]);
        assert_eq!(
            ed_why(&line("ssh-ed25519", &short)),
            mismatch("ssh-ed25519", "its public key is not 32 bytes")
        );
        // An ecdsa key naming another curve, or a compressed point.
        let mut p256 = blob(NISTP256);
        p256[4 + 19 + 4 + 7] = b'9';
        assert_eq!(
            ed_why(&line("ecdsa-sha2-nistp256", &p256)),
            mismatch("ecdsa-sha2-nistp256", "it names another curve")
        );
        let mut p256 = blob(NISTP256);
        p256[4 + 19 + 4 + 8 + 4] = 2;
        assert_eq!(
            ed_why(&line("ecdsa-sha2-nistp256", &p256)),
            mismatch(
                "ecdsa-sha2-nistp256",
                "its point is not an uncompressed point of the curve"
            )
        );
        // RSA: a modulus too small, a negative one, an even exponent.
        let rsa = |e: &[u8], n: &[u8]| {
            let mut b = Vec::new();
            for s in [&b"ssh-rsa"[..], e, n] {
                b.extend_from_slice(&u32::try_from(s.len()).expect("len").to_be_bytes());
                b.extend_from_slice(s);
            }
            ed_why(&line("ssh-rsa", &b))
        };
        let n1024 = [&[0u8][..], &[0xc1; 128]].concat();
        assert_eq!(rsa(&[1, 0, 1], &n1024), Ok(()));
        assert_eq!(
            rsa(&[1, 0, 1], &[0x41; 127]),
            mismatch("ssh-rsa", "its modulus is not between 1024 and 16384 bits")
        );
        assert_eq!(
            rsa(&[1, 0, 1], &[0xc1; 128]),
            mismatch("ssh-rsa", "its modulus is not a positive integer")
        );
        assert_eq!(
            rsa(&[1, 0, 1], &[&[0u8, 0][..], &[0xc1; 128]].concat()),
            mismatch("ssh-rsa", "its modulus is not a positive integer")
        );
        assert_eq!(
            rsa(&[1, 0, 2], &n1024),
            mismatch("ssh-rsa", "its exponent is not a small odd number")
        );
    }

    #[test]
    fn base64_decodes_canonical_text_only() {
        let mut seed = 0x2545_f491_u32;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let text = base64_encode(&bytes);
            if len == 0 {
                assert_eq!(base64_decode(&text), None, "empty key data is no key data");
            } else {
                assert_eq!(base64_decode(&text).as_deref(), Some(&bytes[..]), "{text}");
            }
        }
        assert_eq!(base64_decode("TWFu"), Some(b"Man".to_vec()));
        assert_eq!(base64_decode("TWE="), Some(b"Ma".to_vec()));
        assert_eq!(base64_decode("TQ=="), Some(b"M".to_vec()));
        // Unused bits set: another text for the same bytes, refused.
        assert_eq!(base64_decode("TWF="), None);
        assert_eq!(base64_decode("TR=="), None);
        for bad in ["TWE", "T===", "TW=u", "TWFu====", "TWF-", "TWF_", "TW u"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn whatever_a_line_is_mutated_into_parses_or_not_without_panic_and_shows_as_it_reads() {
        // Every byte flipped, dropped or doubled in each served type's line (and in a comment
        // after it): a line accepted is always one key, shown as its first two fields, that
        // reads back as itself.
        let mut accepted = 0;
        for original in [ED25519, NISTP256, NISTP384, NISTP521, RSA] {
            let line = format!("{original} root@web1");
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                let mut flipped = bytes.to_vec();
                flipped[i] ^= 0x20;
                let dropped = [&bytes[..i], &bytes[i + 1..]].concat();
                let doubled = [&bytes[..=i], &bytes[i..]].concat();
                for mutant in [flipped, dropped, doubled] {
                    let Ok(text) = String::from_utf8(mutant) else {
                        continue;
                    };
                    if let Ok(key) = parse(&text) {
                        accepted += 1;
                        let mut fields = text.split([' ', '\t']).filter(|f| !f.is_empty());
                        let shown = format!(
                            "{} {}",
                            fields.next().unwrap_or_default(),
                            fields.next().unwrap_or_default()
                        );
                        assert_eq!(key.to_string(), shown, "{text:?}");
                        assert_eq!(parse(&key.to_string()), Ok(key));
                    }
                }
            }
        }
        // Some pass: a changed comment, or changed key bytes that keep the type's structure.
        assert!(accepted > 0);
    }

    #[test]
    fn keys_order_by_type_then_key_data() {
        let mut keys: Vec<HostKey> = [RSA, NISTP521, ED25519, NISTP256]
            .iter()
            .map(|t| parse(t).expect("key"))
            .collect();
        keys.sort();
        let kinds: Vec<&str> = keys.iter().map(HostKey::kind).collect();
        assert_eq!(
            kinds,
            [
                "ecdsa-sha2-nistp256",
                "ecdsa-sha2-nistp521",
                "ssh-ed25519",
                "ssh-rsa"
            ]
        );
    }
}
