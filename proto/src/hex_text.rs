//! Fixed-length hex text for keys and request ids.
//!
//! Encoding and decoding run in constant time with respect to the bytes (no table lookups, no
//! data-dependent branches), because the same code writes and reads secret keys. Only the length is
//! allowed to leak.

/// Appends the lowercase hex encoding of `bytes` to `out`.
///
/// `out` should have spare capacity for `2 * bytes.len()` characters so that a secret's text is never
/// left behind in a reallocated buffer.
pub(crate) fn encode_lower_into(bytes: &[u8], out: &mut String) {
    for &byte in bytes {
        out.push(char::from(nibble_to_ascii(byte >> 4)));
        out.push(char::from(nibble_to_ascii(byte & 0x0f)));
    }
}

/// Decodes exactly `2 * N` hex digits (either case) into `out`. Returns `false`, leaving `out`
/// unspecified, if the length is wrong or any character is not a hex digit.
pub(crate) fn decode_exact<const N: usize>(text: &str, out: &mut [u8; N]) -> bool {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return false;
    }
    let mut invalid: i16 = 0;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let high = ascii_to_nibble(pair[0]);
        let low = ascii_to_nibble(pair[1]);
        invalid |= high | low;
        *byte = ((high << 4) | low) as u8;
    }
    invalid >= 0
}

/// `0..=15` to `'0'..='9' | 'a'..='f'` without branching on the value.
fn nibble_to_ascii(nibble: u8) -> u8 {
    let n = i16::from(nibble);
    // For n > 9, (9 - n) is negative, so the shift yields all ones and adds the gap from '9'+1 to 'a'.
    (n + i16::from(b'0') + (((9 - n) >> 8) & i16::from(b'a' - b'0' - 10))) as u8
}

/// A hex digit (either case) to its value, or -1, without branching on the value
/// (after the base16ct crate's decoder).
fn ascii_to_nibble(c: u8) -> i16 {
    let c = i16::from(c);
    let mut value: i16 = -1;
    // Each term is (c - base + 1) when lower < c < upper, else 0; at most one term is non-zero.
    value += (((0x2f - c) & (c - 0x3a)) >> 8) & (c - 0x2f); // '0'..='9'
    value += (((0x40 - c) & (c - 0x47)) >> 8) & (c - 0x36); // 'A'..='F'
    value += (((0x60 - c) & (c - 0x67)) >> 8) & (c - 0x56); // 'a'..='f'
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nibbles_match_the_hex_crate_for_every_byte() {
        for byte in 0..=u8::MAX {
            let mut ours = String::new();
            encode_lower_into(&[byte], &mut ours);
            assert_eq!(ours, hex::encode([byte]));

            let mut decoded = [0u8; 1];
            assert!(decode_exact(&ours, &mut decoded));
            assert_eq!(decoded, [byte]);
            assert!(decode_exact(&ours.to_ascii_uppercase(), &mut decoded));
            assert_eq!(decoded, [byte]);
        }
    }

    #[test]
    fn every_non_hex_character_is_rejected() {
        for c in 0..=u8::MAX {
            let expected = c.is_ascii_hexdigit();
            assert_eq!(ascii_to_nibble(c) >= 0, expected, "{c:#04x}");
        }
    }

    #[test]
    fn wrong_lengths_and_non_ascii_are_rejected() {
        let mut out = [0u8; 2];
        assert!(decode_exact("abcd", &mut out));
        assert_eq!(out, [0xab, 0xcd]);
        for bad in ["", "abc", "abcde", "abcg", "ab d", "é12", "+abc"] {
            assert!(!decode_exact(bad, &mut out), "{bad:?}");
        }
    }
}
