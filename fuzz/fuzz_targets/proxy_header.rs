//! Arbitrary bytes into the PROXY protocol header stage, as the first bytes a
//! connection reads under `--proxy-protocol`.
//!
//! The connection will trust what [`parse_header`] returns: it drops
//! `consumed` bytes, skips `remaining` more as they arrive, logs `source` as
//! the client, and closes on any error. So beyond "never panics" this target
//! checks the promises that trust rests on:
//!
//! - `consumed` never exceeds the input; bytes are left to skip only when the
//!   input ran out (`consumed` is then all of it), and a v1 header never
//!   leaves any;
//! - a complete v1 line is at most `MAX_V1_LINE_BYTES` and ends in CRLF; a
//!   v2 header's total length is 16 plus its `len` field;
//! - `Partial` only below `MAX_V1_LINE_BYTES`: no header needs more bytes
//!   buffered than that to be decided, so the 8 KiB request buffer always
//!   suffices and a peer cannot park a connection on a full buffer;
//! - split reads: the input cut anywhere gives `Partial`, or already the
//!   whole input's error, or a header with the same client and total length
//!   (its `consumed` capped at the cut). Every cut up to
//!   `ALL_CUTS_UP_TO_BYTES` is tried, which covers any point a fuzzer would
//!   choose within a header (no header needs more than 107 bytes to decide);
//!   once a cut is decided, no longer cut goes back to `Partial`;
//! - a client address only from v1 `TCP4`/`TCP6` or v2 `PROXY` over TCP/IPv4
//!   or TCP/IPv6, and it is the one written in the header (decoded here
//!   independently), of the header's family.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use mioserve::proxy::{Header, HeaderStatus, MAX_V1_LINE_BYTES, ProxyError, parse_header};
use mioserve_fuzz::literal;

/// Inputs are re-parsed at every cut up to this length, then at the last
/// one; beyond it a cut can only shorten `consumed` of a v2 header with TLVs.
const ALL_CUTS_UP_TO_BYTES: usize = 256;

/// How a v2 header starts.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fuzz_target!(|data: &[u8]| {
    let whole = parse_header(data);
    match whole {
        Ok(HeaderStatus::Complete(header)) => check_complete(data, header),
        Ok(HeaderStatus::Partial) => assert!(
            data.len() < MAX_V1_LINE_BYTES,
            "Partial on {} bytes: {}",
            data.len(),
            literal(data)
        ),
        Err(error) => assert!(!error.as_str().is_empty()),
    }
    check_cuts(data, whole);
});

fn check_complete(data: &[u8], header: Header) {
    assert!(
        header.consumed <= data.len(),
        "consumed {} of {}: {}",
        header.consumed,
        data.len(),
        literal(data)
    );
    assert!(
        header.remaining == 0 || header.consumed == data.len(),
        "{header:?} with bytes left in the buffer: {}",
        literal(data)
    );
    if data.starts_with(V2_SIGNATURE) {
        let len = u16::from_be_bytes([data[14], data[15]]);
        assert_eq!(
            header.total_len(),
            16 + usize::from(len),
            "{}",
            literal(data)
        );
    } else {
        assert_eq!(
            header.remaining,
            0,
            "v1 left bytes to skip: {}",
            literal(data)
        );
        assert!(
            header.consumed <= MAX_V1_LINE_BYTES,
            "a {}-byte v1 line: {}",
            header.consumed,
            literal(data)
        );
        assert!(
            data[..header.consumed].ends_with(b"\r\n"),
            "v1 line without CRLF: {}",
            literal(data)
        );
    }
    if let Some(source) = header.source {
        assert_eq!(
            Some(source),
            written_source(data),
            "the client is not the header's: {}",
            literal(data)
        );
    }
}

/// The client address a header names, decoded without the parser: the
/// third and fifth v1 fields after `TCP4`/`TCP6`, or the first address and
/// port of a v2 `PROXY` over TCP/IPv4 or TCP/IPv6. `None` for anything else.
fn written_source(data: &[u8]) -> Option<SocketAddr> {
    if data.starts_with(V2_SIGNATURE) && data[12] == 0x21 {
        return match data[13] {
            // After the 16-byte fixed part: source, destination, source port.
            0x11 => {
                let octets: [u8; 4] = data.get(16..20)?.try_into().ok()?;
                Some(SocketAddr::from((octets, port_at(data, 16 + 8)?)))
            }
            0x21 => {
                let octets: [u8; 16] = data.get(16..32)?.try_into().ok()?;
                Some(SocketAddr::from((octets, port_at(data, 16 + 32)?)))
            }
            _ => None,
        };
    }
    let line = std::str::from_utf8(data.split(|&b| b == b'\r').next()?).ok()?;
    let fields: Vec<&str> = line.split(' ').collect();
    let ip: IpAddr = match fields.get(1) {
        Some(&"TCP4") => IpAddr::V4(fields.get(2)?.parse().ok()?),
        Some(&"TCP6") => IpAddr::V6(fields.get(2)?.parse().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, fields.get(4)?.parse().ok()?))
}

/// The big-endian port at `at`.
fn port_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

/// The input cut short, as a header split across reads would first be seen.
fn check_cuts(data: &[u8], whole: Result<HeaderStatus, ProxyError>) {
    let cuts = (0..data.len().min(ALL_CUTS_UP_TO_BYTES)).chain(data.len().checked_sub(1));
    let mut decided_at = None;
    for cut in cuts {
        let prefix = parse_header(&data[..cut]);
        match (prefix, whole) {
            (Ok(HeaderStatus::Partial), _) => {
                assert_eq!(
                    decided_at,
                    None,
                    "Partial at {cut} after a decision at {decided_at:?}: {}",
                    literal(data)
                );
                continue;
            }
            (Err(early), Err(late)) => assert_eq!(early, late, "at {cut}: {}", literal(data)),
            (Ok(HeaderStatus::Complete(early)), Ok(HeaderStatus::Complete(late))) => {
                assert_eq!(early.source, late.source, "at {cut}: {}", literal(data));
                assert_eq!(
                    early.total_len(),
                    late.total_len(),
                    "at {cut}: {}",
                    literal(data)
                );
                assert_eq!(
                    early.consumed,
                    early.total_len().min(cut),
                    "at {cut}: {}",
                    literal(data)
                );
            }
            (early, late) => panic!(
                "{early:?} at {cut} but {late:?} for all {} bytes: {}",
                data.len(),
                literal(data)
            ),
        }
        decided_at.get_or_insert(cut);
    }
}
