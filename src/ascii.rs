//! Numbers (decimal, or a byte in hex) and client addresses appended to byte
//! buffers as ASCII.
//!
//! Why not `write!`: `core::fmt` is general (padding, alignment, any
//! `Display` behind a trait object), and that generality costs a few hundred
//! instructions per integer. A response head and its log line carry about
//! eight integers (status, `Content-Length`, `Keep-Alive`, four address
//! octets, body bytes); formatted with `write!` they were about a fifth of
//! all user-space instructions of a small keep-alive request (callgrind).
//! The loop below does only what these fields need.

use std::io::Write as _;
use std::net::IpAddr;

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    // Most numbers here are small (a status, an address octet, a timeout):
    // up to three digits go out as one fixed-length copy, which compiles to
    // a store or two, where the general loop's copy of a computed length is
    // a call to `memcpy`.
    let digit = |n: u64| b'0' + (n % 10) as u8;
    if n < 10 {
        out.push(digit(n));
        return;
    }
    if n < 100 {
        out.extend_from_slice(&[digit(n / 10), digit(n)]);
        return;
    }
    if n < 1000 {
        out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]);
        return;
    }
    // u64::MAX has 20 digits. Digits come out least significant first, so
    // fill the array from the end.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = digit(n);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `byte` as two uppercase hex digits (`\x1B` in the access log,
/// `\u001B` in JSON).
pub fn push_hex_byte(out: &mut Vec<u8>, byte: u8) {
    const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[
        HEX_DIGITS[usize::from(byte >> 4)],
        HEX_DIGITS[usize::from(byte & 15)],
    ]);
}

/// Appends an address as `Display` writes it: dotted quad for IPv4, RFC 5952
/// text for IPv6 (left to `core::fmt`: rarer, and its zero-run compression is
/// not worth redoing).
pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        // Writing into a Vec cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_display() {
        for n in (0..=1_100).chain([65_535, 1 << 32, u64::MAX]) {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn hex_bytes_are_two_uppercase_digits() {
        for byte in [0, 9, 10, 0x1b, 0x7f, 0x9b, 0xff] {
            let mut out = Vec::new();
            push_hex_byte(&mut out, byte);
            assert_eq!(out, format!("{byte:02X}").into_bytes());
        }
    }

    #[test]
    fn addresses_match_display() {
        for text in [
            "127.0.0.1",
            "0.0.0.0",
            "10.200.3.255",
            "::1",
            "fd00::2",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().into_bytes());
        }
    }
}
