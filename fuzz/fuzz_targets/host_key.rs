//! `HostKey` parsing on arbitrary text: what `sesame known-hosts` prints for ssh's
//! `KnownHostsCommand` and what the daemon reads from `ssh_host_*_key.pub`. Never a panic; an
//! error's text stays short and free of control characters (it is logged); and a line accepted
//! shows as exactly `TYPE BASE64`, a served type and canonical base64 whose structure starts with
//! that very type's name (checked here with a decoder of its own), which parses back as itself.
//! So nothing a host writes can put a marker, a second key, a hashed name or a line break into a
//! client's known_hosts line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_proto::{HOST_KEY_TYPES, HostKey, MAX_HOST_KEY_LINE};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    check(text);
    // The same text as the last of a file's lines, and with a comment after it.
    check(&format!("{text}\n"));
    check(&format!("{text} root@web1"));
});

fn check(text: &str) {
    let key = match text.parse::<HostKey>() {
        Ok(key) => key,
        Err(error) => {
            let shown = error.to_string();
            assert!(shown.chars().count() <= 240, "{shown:?}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            return;
        }
    };
    assert!(text.len() <= MAX_HOST_KEY_LINE);
    assert!(HOST_KEY_TYPES.contains(&key.kind()), "{key:?}");
    let shown = key.to_string();
    assert_eq!(shown, format!("{} {}", key.kind(), key.key()));
    assert!(shown.len() <= text.len(), "{shown:?} is longer than {text:?}");
    assert!(
        key.key()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='),
        "{key:?}"
    );
    let blob = decode(key.key()).expect("the key data is base64");
    let name = key.kind().as_bytes();
    assert!(blob.len() > 4 + name.len(), "{key:?}");
    let len = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    assert_eq!(&blob[4..4 + len.min(blob.len() - 4)], name, "{key:?}");
    assert_eq!(shown.parse::<HostKey>().as_ref(), Ok(&key), "round trip");
}

/// Padded base64 (RFC 4648), decoded independently of the crate under test; `None` when the text
/// is not a whole number of quanta of the alphabet with its padding at the end.
fn decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quantum) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = quantum.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc = 0u32;
        for &b in &quantum[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == b)?;
            acc = (acc << 6) | v as u32;
        }
        acc <<= 6 * pad as u32;
        let three = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}
