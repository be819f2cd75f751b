//! The PROXY protocol stage: the bytes a load balancer sends before the
//! request, in; the client's address (or a refusal), out.
//!
//! ## Why a balancer sends a header
//! Behind a TCP load balancer (HAProxy, an AWS Network Load Balancer, nginx's
//! `stream` module) the peer of every accepted socket is the balancer, not
//! the client: `accept` can only tell us who opened *this* TCP connection.
//! With `--proxy-protocol` the balancer writes one header in front of the
//! client's bytes saying who the client was, as HAProxy's
//! `doc/proxy-protocol.txt` specifies. Anyone who can reach the port can
//! write such a header too, which is why `--trusted-proxy` ([`Cidr`]) closes
//! connections from other peers before a byte is read.
//!
//! ## What it looks like
//! Version 1 is one text line of at most 107 bytes, CRLF included:
//!
//! ```text
//! PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n    client 192.0.2.1:56324
//! PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n
//! PROXY UNKNOWN\r\n                                   (anything may follow UNKNOWN)
//! ```
//!
//! Version 2 is binary: a 16-byte fixed part, then `len` more bytes that
//! start with the addresses and may go on with TLVs (type-length-value
//! extensions: TLS details, a VPC endpoint id, ...), which we skip unread:
//!
//! ```text
//!  0                  12     13     14    16                       16+len
//!  +------------------+------+------+-----+-------------+----------+
//!  | \r\n\r\n\0\r\nQUIT\n | 0x21 | 0x11 | len | addresses   | TLVs ... |
//!  +------------------+------+------+-----+-------------+----------+
//!     signature        ver|cmd fam|proto     IPv4: 4+4+2+2 bytes
//!                      2 | 1=PROXY, 0=LOCAL  IPv6: 16+16+2+2 bytes
//! ```
//!
//! The two signatures differ in their first byte (`P` or CR), so the first
//! byte decides which version to read, and a buffer that starts like neither
//! is refused at once: no header, no waiting.
//!
//! ## Where it sits in a connection's life
//! Once per connection, before the first request, under the header timeout:
//! the connection reads into its request buffer as usual and calls
//! [`parse_header`] on what it holds so far. [`HeaderStatus::Partial`] means
//! keep reading (the header may arrive split across reads). A complete
//! [`Header`] gives the client address to log, or `None` for `LOCAL` (the
//! balancer's own health checks) and `UNKNOWN`, which mean "use the real
//! peer". The header's bytes are dropped and whatever follows them is the
//! start of the first request, already buffered.
//!
//! On an error, or if the header timeout runs out first, the connection is
//! closed without an HTTP answer: whoever sent it does not speak the protocol
//! we were told to expect, so an HTTP error page would only be garbage to
//! them. The close is counted, like every other refusal.
//!
//! ## Headers longer than the buffer
//! The request buffer holds `config::MAX_REQUEST_HEAD_BYTES` (8 KiB), but a
//! v2 header may announce up to 65,535 bytes after its fixed part. The
//! specification says a receiver must skip `len` bytes whatever they hold,
//! and we need none of the TLVs. So [`parse_header`] completes as soon as the
//! fixed part and the address block are in, and splits the header's length
//! into [`Header::consumed`] (the header bytes in this buffer: drop them) and
//! [`Header::remaining`] (header bytes not received yet: discard that many
//! from the next reads before the request starts). No TLV byte is ever
//! buffered beyond the read that brought it, and no header is refused for its
//! size.
//!
//! ## Why not the `ppp` crate
//! `ppp` parses a byte slice and reports an incomplete header, but it does
//! not fit this reactor (checked with ppp 2.3.0):
//! - a v2 header must be whole in one slice, TLVs included: with 9,000 bytes
//!   of TLVs in an 8 KiB buffer it answers `Partial(8176, 9015)` forever, so
//!   we would need a 64 KiB buffer per connection or refuse such headers;
//! - `PROXY UNKNOWN a b c d e f\r\n` (the specification says to ignore
//!   anything after `UNKNOWN`) stays "incomplete" forever: the connection
//!   would hang until its header timeout;
//! - it accepts `+80` as a port, which the protocol does not allow.
//!
//! The format is small (two fixed layouts), so the parser here is short,
//! allocation-free, and follows the specification's rules one by one; the
//! `proxy_header` fuzz target checks its contracts.

use std::array;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6
/// addresses and ports). A line without its CRLF within this many bytes is
/// refused with [`ProxyError::LineTooLong`].
pub const MAX_V1_LINE_BYTES: usize = 107;

/// How a v1 header starts. The specification names `PROXY` as the signature;
/// the single space after it is required too, so we check it at once.
const V1_SIGNATURE: &[u8] = b"PROXY ";

/// How a v2 header starts: chosen to be rejected by most other protocols.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header's fixed part: signature, version and command, family and
/// protocol, and the 16-bit length of the rest.
const V2_FIXED_BYTES: usize = 16;

/// v2's family-and-protocol byte for TCP over IPv4.
const TCP_OVER_IPV4: u8 = 0x11;

/// v2's family-and-protocol byte for TCP over IPv6.
const TCP_OVER_IPV6: u8 = 0x21;

/// The address block of TCP over IPv4: two addresses and two ports.
const V2_IPV4_BLOCK_BYTES: usize = 4 + 4 + 2 + 2;

/// The address block of TCP over IPv6: two addresses and two ports.
const V2_IPV6_BLOCK_BYTES: usize = 16 + 16 + 2 + 2;

/// A complete header, as [`parse_header`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The client's address, when the balancer relayed a TCP connection over
    /// IPv4 or IPv6. `None` for v2 `LOCAL` (the balancer's own connection,
    /// such as a health check), v1 `UNKNOWN`, and v2 families we do not use
    /// (`UNSPEC`, UDP, UNIX): the connection's real peer is the one to log.
    pub source: Option<SocketAddr>,
    /// How many bytes at the start of the buffer belong to the header: drop
    /// them; the bytes after them are the start of the first request. Never
    /// more than the buffer's length.
    pub consumed: usize,
    /// How many header bytes (v2 TLVs) have not arrived yet: the next bytes
    /// read, up to this many, are still header and must be discarded. Zero
    /// for every v1 header and for v2 headers that fit in what was read.
    pub remaining: usize,
}

impl Header {
    /// The header's whole length on the wire: for v2, 16 bytes plus its
    /// `len` field, however much of it has arrived.
    pub fn total_len(&self) -> usize {
        self.consumed + self.remaining
    }
}

/// The outcome of [`parse_header`] on bytes that were not refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderStatus {
    /// The header is complete (all of it that we need, see [`Header`]).
    Complete(Header),
    /// The bytes so far are a valid beginning of a header; read more.
    Partial,
}

/// Why a PROXY protocol header was refused. Small and `Copy`: refusing never
/// allocates. Every one of these closes the connection without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes start with neither signature: a client that bypassed the
    /// balancer, or a balancer not configured to send the header.
    NoSignature,
    /// v1: no CRLF within [`MAX_V1_LINE_BYTES`].
    LineTooLong,
    /// v1: a CR or LF that is not the line's closing CRLF (the specification
    /// forbids tolerating a lone CR or LF).
    StrayLineBreak,
    /// v1: the protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    UnknownProtocol,
    /// v1: `TCP4`/`TCP6` not followed by exactly four fields, each after
    /// exactly one space.
    FieldCount,
    /// v1: an address that is not one of the protocol's family.
    BadAddress,
    /// v1: a port that is not a decimal number in 0..=65535 without leading
    /// zeros or sign.
    BadPort,
    /// v2: the version is not 2.
    UnsupportedVersion,
    /// v2: the command is neither `LOCAL` nor `PROXY`.
    UnknownCommand,
    /// v2: an unassigned address family or transport protocol.
    UnknownFamily,
    /// v2: `len` is shorter than the address block of TCP over IPv4 or IPv6.
    AddressBlockTooShort,
}

impl ProxyError {
    /// A short description for logs and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyError::NoSignature => "no PROXY protocol signature",
            ProxyError::LineTooLong => "v1 line without CRLF within 107 bytes",
            ProxyError::StrayLineBreak => "v1 line with a lone CR or LF",
            ProxyError::UnknownProtocol => "v1 protocol not TCP4, TCP6 or UNKNOWN",
            ProxyError::FieldCount => "v1 line without exactly four address fields",
            ProxyError::BadAddress => "v1 address not of the protocol's family",
            ProxyError::BadPort => "v1 port not a decimal number in 0..=65535",
            ProxyError::UnsupportedVersion => "v2 version not 2",
            ProxyError::UnknownCommand => "v2 command neither LOCAL nor PROXY",
            ProxyError::UnknownFamily => "v2 address family or protocol unassigned",
            ProxyError::AddressBlockTooShort => "v2 length shorter than its address block",
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ProxyError {}

/// Parses the PROXY protocol header at the start of `bytes`, everything the
/// connection has read so far.
///
/// Errors are final: more bytes never turn an error into a header, so a
/// caller may close on the first one. Every decision is made as soon as the
/// byte it depends on has arrived, so a header read in pieces gets the same
/// answer as one read at once (`Partial` before that).
pub fn parse_header(bytes: &[u8]) -> Result<HeaderStatus, ProxyError> {
    match bytes.first() {
        None => Ok(HeaderStatus::Partial),
        Some(&first) if first == V1_SIGNATURE[0] => parse_v1(bytes),
        Some(&first) if first == V2_SIGNATURE[0] => parse_v2(bytes),
        Some(_) => Err(ProxyError::NoSignature),
    }
}

/// True if `bytes` and `signature` agree on their common length: `bytes`
/// is, so far, a beginning of the signature (or starts with all of it).
fn matches_signature(bytes: &[u8], signature: &[u8]) -> bool {
    let common = bytes.len().min(signature.len());
    bytes[..common] == signature[..common]
}

/// Version 1: waits for the CRLF (the specification says not to decode
/// addresses before it), then reads the line.
fn parse_v1(bytes: &[u8]) -> Result<HeaderStatus, ProxyError> {
    if !matches_signature(bytes, V1_SIGNATURE) {
        return Err(ProxyError::NoSignature);
    }
    let window = &bytes[..bytes.len().min(MAX_V1_LINE_BYTES)];
    let line_break = window.iter().position(|&b| b == b'\r' || b == b'\n');
    let line_len = match line_break {
        Some(at) if window[at] == b'\n' => return Err(ProxyError::StrayLineBreak),
        Some(at) => match window.get(at + 1) {
            Some(b'\n') => at,
            Some(_) => return Err(ProxyError::StrayLineBreak),
            // The LF can still come, unless it would be byte 108.
            None if window.len() < MAX_V1_LINE_BYTES => return Ok(HeaderStatus::Partial),
            None => return Err(ProxyError::LineTooLong),
        },
        None if window.len() < MAX_V1_LINE_BYTES => return Ok(HeaderStatus::Partial),
        None => return Err(ProxyError::LineTooLong),
    };
    // The line holds no CR or LF, and `line_len >= 6` because the signature
    // matched and holds neither.
    let source = parse_v1_fields(&bytes[V1_SIGNATURE.len()..line_len])?;
    Ok(HeaderStatus::Complete(Header {
        source,
        consumed: line_len + 2,
        remaining: 0,
    }))
}

/// The part of a v1 line after `PROXY `, without the CRLF.
fn parse_v1_fields(fields: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let mut fields = fields.split(|&b| b == b' ');
    // `split` always yields at least one piece.
    match fields.next().unwrap_or_default() {
        // Whatever follows UNKNOWN is to be ignored (the CRLF has been found).
        b"UNKNOWN" => Ok(None),
        b"TCP4" => parse_v1_addresses::<Ipv4Addr>(fields).map(Some),
        b"TCP6" => parse_v1_addresses::<Ipv6Addr>(fields).map(Some),
        _ => Err(ProxyError::UnknownProtocol),
    }
}

/// `source destination source-port destination-port` of family `Ip`: exactly
/// four fields. Two spaces in a row make an empty field, which no address or
/// port parses, so they are refused too. The destination is checked though
/// unused: anything that does not match the protocol exactly must be refused.
fn parse_v1_addresses<'a, Ip: FromStr + Into<IpAddr>>(
    mut fields: impl Iterator<Item = &'a [u8]>,
) -> Result<SocketAddr, ProxyError> {
    let mut next = || fields.next().ok_or(ProxyError::FieldCount);
    let [source, destination, source_port, destination_port] = [next()?, next()?, next()?, next()?];
    if fields.next().is_some() {
        return Err(ProxyError::FieldCount);
    }
    let source = SocketAddr::new(parse_ip::<Ip>(source)?.into(), parse_port(source_port)?);
    parse_ip::<Ip>(destination)?;
    parse_port(destination_port)?;
    Ok(source)
}

/// An address of the family `T`. The standard library's parsers take the
/// canonical forms the specification asks for and refuse leading zeros in
/// IPv4 octets.
fn parse_ip<T: FromStr>(field: &[u8]) -> Result<T, ProxyError> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(ProxyError::BadAddress)
}

/// A port: decimal digits only (`u16::from_str` would take a `+`), no
/// leading zero except in `0` itself, at most 65535.
fn parse_port(field: &[u8]) -> Result<u16, ProxyError> {
    let digits_only = !field.is_empty() && field.iter().all(u8::is_ascii_digit);
    let leading_zero = field.len() > 1 && field[0] == b'0';
    if !digits_only || leading_zero || field.len() > 5 {
        return Err(ProxyError::BadPort);
    }
    let value = field
        .iter()
        .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'));
    u16::try_from(value).map_err(|_| ProxyError::BadPort)
}

/// Version 2: the fixed part, then the address block if we use it.
fn parse_v2(bytes: &[u8]) -> Result<HeaderStatus, ProxyError> {
    if !matches_signature(bytes, V2_SIGNATURE) {
        return Err(ProxyError::NoSignature);
    }
    // Each check runs as soon as its byte is in, so a bad header is refused
    // without waiting for the rest of the fixed part.
    let Some(&version_command) = bytes.get(12) else {
        return Ok(HeaderStatus::Partial);
    };
    if version_command >> 4 != 2 {
        return Err(ProxyError::UnsupportedVersion);
    }
    let is_proxy = match version_command & 0x0F {
        0x0 => false,
        0x1 => true,
        _ => return Err(ProxyError::UnknownCommand),
    };
    let Some(&family_protocol) = bytes.get(13) else {
        return Ok(HeaderStatus::Partial);
    };
    // LOCAL: "discard the protocol block including the family which is
    // ignored" (the specification), so only PROXY's family is checked.
    let family_protocol = if is_proxy {
        if family_protocol >> 4 > 0x3 || family_protocol & 0x0F > 0x2 {
            return Err(ProxyError::UnknownFamily);
        }
        Some(family_protocol)
    } else {
        None
    };
    let [Some(&len_high), Some(&len_low)] = [bytes.get(14), bytes.get(15)] else {
        return Ok(HeaderStatus::Partial);
    };
    let total_len = V2_FIXED_BYTES + usize::from(u16::from_be_bytes([len_high, len_low]));

    let source = match family_protocol {
        Some(TCP_OVER_IPV4) => {
            let Some(block) = address_block::<V2_IPV4_BLOCK_BYTES>(bytes, total_len)? else {
                return Ok(HeaderStatus::Partial);
            };
            let octets: [u8; 4] = array::from_fn(|i| block[i]);
            let port = u16::from_be_bytes([block[8], block[9]]);
            Some(SocketAddr::from((octets, port)))
        }
        Some(TCP_OVER_IPV6) => {
            let Some(block) = address_block::<V2_IPV6_BLOCK_BYTES>(bytes, total_len)? else {
                return Ok(HeaderStatus::Partial);
            };
            let octets: [u8; 16] = array::from_fn(|i| block[i]);
            let port = u16::from_be_bytes([block[32], block[33]]);
            Some(SocketAddr::from((octets, port)))
        }
        // LOCAL, and PROXY with UNSPEC, UDP or UNIX: the specification lets
        // a receiver fall back to the real peer, as its own sample code does;
        // the address information is ignored.
        _ => None,
    };
    let consumed = total_len.min(bytes.len());
    Ok(HeaderStatus::Complete(Header {
        source,
        consumed,
        remaining: total_len - consumed,
    }))
}

/// The `BLOCK_BYTES`-byte address block after the fixed part, once it has
/// arrived; an error if the header's length cannot hold it.
fn address_block<const BLOCK_BYTES: usize>(
    bytes: &[u8],
    total_len: usize,
) -> Result<Option<&[u8; BLOCK_BYTES]>, ProxyError> {
    if total_len < V2_FIXED_BYTES + BLOCK_BYTES {
        return Err(ProxyError::AddressBlockTooShort);
    }
    Ok(bytes
        .get(V2_FIXED_BYTES..V2_FIXED_BYTES + BLOCK_BYTES)
        .and_then(|block| block.try_into().ok()))
}

/// A block of addresses, such as `10.0.0.0/8` or `2001:db8::/32`, for
/// `--trusted-proxy`: only peers inside one of them may connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The first address of the block (its host bits are zero).
    network: IpAddr,
    /// How many leading bits of an address must equal the network's.
    prefix_len: u8,
}

impl Cidr {
    /// The block's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits the block fixes (32 or 128 for one address).
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `peer` is inside the block. An IPv4 peer accepted on an IPv6
    /// socket shows up IPv4-mapped (`::ffff:10.1.2.3`) and is matched against
    /// IPv4 blocks as the IPv4 address it is.
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.network, peer) {
            (IpAddr::V4(network), IpAddr::V4(peer)) => self.contains_v4(network, peer),
            (IpAddr::V4(network), IpAddr::V6(peer)) => peer
                .to_ipv4_mapped()
                .is_some_and(|peer| self.contains_v4(network, peer)),
            (IpAddr::V6(network), IpAddr::V6(peer)) => {
                u128::from(peer) & mask_v6(self.prefix_len) == u128::from(network)
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }

    fn contains_v4(&self, network: Ipv4Addr, peer: Ipv4Addr) -> bool {
        u32::from(peer) & mask_v4(self.prefix_len) == u32::from(network)
    }
}

/// The netmask of an IPv4 prefix length (at most 32).
fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

/// The netmask of an IPv6 prefix length (at most 128).
fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

/// Why a `--trusted-proxy` value was refused; its text is what the command
/// line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    BadAddress,
    /// The part after `/` is not a number up to the family's bit count.
    BadPrefixLen {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits beyond the prefix are set (`10.1.2.3/8`): probably a typo, so
    /// refused rather than guessed at.
    HostBitsSet {
        /// The block the value probably meant.
        network: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::BadAddress => f.write_str(
                "not an IP address or block (examples: 10.0.0.0/8, 192.0.2.7, ::1/128, 2001:db8::/32)",
            ),
            CidrError::BadPrefixLen { max } => {
                write!(f, "the prefix length after '/' must be a number from 0 to {max}")
            }
            CidrError::HostBitsSet {
                network,
                prefix_len,
            } => write!(
                f,
                "bits after the prefix are set; did you mean {network}/{prefix_len}?"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix-len`, or a bare address for just that address.
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, prefix_len)) => (address, Some(prefix_len)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| CidrError::BadAddress)?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_len {
            None => max,
            // Digits only: `u8::from_str` would also take `+8`.
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits
                    .parse()
                    .ok()
                    .filter(|&len| len <= max)
                    .ok_or(CidrError::BadPrefixLen { max })?
            }
            Some(_) => return Err(CidrError::BadPrefixLen { max }),
        };
        let masked = match network {
            IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask_v4(prefix_len))),
            IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(u128::from(ip) & mask_v6(prefix_len))),
        };
        if masked != network {
            return Err(CidrError::HostBitsSet {
                network: masked,
                prefix_len,
            });
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 header: fixed part with `version_command` and `family`, then
    /// `rest` (address block and TLVs), its length written into `len`.
    fn v2(version_command: u8, family: u8, rest: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([version_command, family]);
        header.extend(u16::try_from(rest.len()).unwrap().to_be_bytes());
        header.extend(rest);
        header
    }

    /// 192.0.2.1:56324 → 198.51.100.7:443.
    const IPV4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB];

    /// [2001:db8::1]:56324 → [2001:db8::2]:443.
    fn ipv6_block() -> Vec<u8> {
        let mut block = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
            .octets()
            .to_vec();
        block.extend(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        block.extend([0xDC, 0x04, 0x01, 0xBB]);
        block
    }

    /// Two TLVs: an authority (`PP2_TYPE_AUTHORITY`, "example.com") and a
    /// `PP2_TYPE_NOOP` of three bytes.
    const TLVS: &[u8] = b"\x02\x00\x0bexample.com\x04\x00\x03\x00\x00\x00";

    fn with(block: &[u8], tail: &[u8]) -> Vec<u8> {
        [block, tail].concat()
    }

    /// Every well-formed header and the client it names (`None`: the real
    /// peer).
    fn valid_headers() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
        vec![
            (
                "v1 TCP4",
                b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".to_vec(),
                Some("192.0.2.1:56324"),
            ),
            (
                "v1 TCP4, the specification's longest",
                b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".to_vec(),
                Some("255.255.255.255:65535"),
            ),
            (
                "v1 TCP4, port 0",
                b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n".to_vec(),
                Some("0.0.0.0:0"),
            ),
            (
                "v1 TCP6",
                b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n".to_vec(),
                Some("[2001:db8::1]:56324"),
            ),
            (
                "v1 TCP6, the specification's longest",
                [
                    b"PROXY TCP6 ".as_slice(),
                    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ",
                    b"FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n",
                ]
                .concat(),
                Some("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            ),
            ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec(), None),
            (
                "v1 UNKNOWN, the specification's worst case (107 bytes)",
                [
                    b"PROXY UNKNOWN ".as_slice(),
                    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ",
                    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
                ]
                .concat(),
                None,
            ),
            (
                "v1 UNKNOWN, anything before the CRLF is ignored",
                b"PROXY UNKNOWN a b c d e f \xff\r\n".to_vec(),
                None,
            ),
            (
                "v2 PROXY TCP4",
                v2(0x21, 0x11, &IPV4_BLOCK),
                Some("192.0.2.1:56324"),
            ),
            (
                "v2 PROXY TCP4 with TLVs",
                v2(0x21, 0x11, &with(&IPV4_BLOCK, TLVS)),
                Some("192.0.2.1:56324"),
            ),
            (
                "v2 PROXY TCP6",
                v2(0x21, 0x21, &ipv6_block()),
                Some("[2001:db8::1]:56324"),
            ),
            (
                "v2 PROXY TCP6 with TLVs",
                v2(0x21, 0x21, &with(&ipv6_block(), TLVS)),
                Some("[2001:db8::1]:56324"),
            ),
            (
                "v2 LOCAL, as HAProxy's health checks",
                v2(0x20, 0x00, &[]),
                None,
            ),
            (
                "v2 LOCAL with an address block, which is skipped",
                v2(0x20, 0x11, &with(&IPV4_BLOCK, TLVS)),
                None,
            ),
            (
                "v2 LOCAL ignores even an unassigned family",
                v2(0x20, 0xFF, &[]),
                None,
            ),
            ("v2 PROXY UNSPEC", v2(0x21, 0x00, &[]), None),
            ("v2 PROXY UDP over IPv4", v2(0x21, 0x12, &IPV4_BLOCK), None),
            ("v2 PROXY UNIX stream", v2(0x21, 0x31, &[0; 216]), None),
        ]
    }

    fn complete(bytes: &[u8]) -> Header {
        match parse_header(bytes) {
            Ok(HeaderStatus::Complete(header)) => header,
            other => panic!("expected a header in {bytes:?}, got {other:?}"),
        }
    }

    #[test]
    fn valid_headers_give_the_client_and_their_length() {
        for (name, bytes, client) in valid_headers() {
            let header = complete(&bytes);
            let client = client.map(|text| text.parse().unwrap());
            assert_eq!(header.source, client, "{name}");
            assert_eq!(header.consumed, bytes.len(), "{name}");
            assert_eq!(header.remaining, 0, "{name}");
        }
    }

    #[test]
    fn bytes_after_the_header_are_left_for_the_request() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for (name, header, _) in valid_headers() {
            let buffer = with(&header, request);
            let parsed = complete(&buffer);
            assert_eq!(parsed, complete(&header), "{name}");
            assert_eq!(&buffer[parsed.consumed..], request, "{name}");
        }
    }

    /// Fed one byte more at a time, as a header split across reads would
    /// be: `Partial` until the part we need is in, then the same client and
    /// total length as the whole header, never an error.
    #[test]
    fn a_header_split_at_every_byte_gives_the_same_answer() {
        for (name, bytes, _) in valid_headers() {
            let whole = complete(&bytes);
            let mut completed_at = None;
            for cut in 0..bytes.len() {
                match parse_header(&bytes[..cut]) {
                    Ok(HeaderStatus::Partial) => {
                        assert_eq!(
                            completed_at, None,
                            "{name}: Partial at {cut} after Complete"
                        )
                    }
                    Ok(HeaderStatus::Complete(header)) => {
                        completed_at.get_or_insert(cut);
                        assert_eq!(header.source, whole.source, "{name} at {cut}");
                        assert_eq!(header.consumed, cut, "{name} at {cut}");
                        assert_eq!(header.total_len(), bytes.len(), "{name} at {cut}");
                    }
                    Err(error) => panic!("{name}: {error:?} at {cut}"),
                }
            }
            // Only v2 TLVs may be still on their way when a header completes.
            if let Some(cut) = completed_at {
                assert!(
                    bytes[0] == b'\r' && cut >= V2_FIXED_BYTES,
                    "{name}: at {cut}"
                );
            }
        }
    }

    #[test]
    fn tlvs_beyond_the_buffer_are_left_to_skip() {
        let tlv_bytes = 60_000;
        let mut rest = IPV4_BLOCK.to_vec();
        rest.extend([0x04]); // PP2_TYPE_NOOP
        rest.extend(u16::try_from(tlv_bytes - 3).unwrap().to_be_bytes());
        rest.resize(IPV4_BLOCK.len() + tlv_bytes, 0);
        let header = v2(0x21, 0x11, &rest);
        let buffered = &header[..crate::config::MAX_REQUEST_HEAD_BYTES];
        assert_eq!(
            complete(buffered),
            Header {
                source: Some("192.0.2.1:56324".parse().unwrap()),
                consumed: buffered.len(),
                remaining: header.len() - buffered.len(),
            }
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        use ProxyError::*;
        let long_line = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 93]].concat();
        let cases: Vec<(&str, Vec<u8>, ProxyError)> = vec![
            ("plain HTTP", b"GET / HTTP/1.1\r\n".to_vec(), NoSignature),
            ("one byte of neither", b"G".to_vec(), NoSignature),
            ("lower case", b"proxy TCP4".to_vec(), NoSignature),
            ("no space after PROXY", b"PROXY\r\n".to_vec(), NoSignature),
            (
                "v2 signature broken",
                b"\r\n\r\n\0\r\nQUIX".to_vec(),
                NoSignature,
            ),
            ("v1 107 bytes without CRLF", long_line.clone(), LineTooLong),
            (
                "v1 CRLF as bytes 107 and 108",
                with(&long_line[..106], b"\r\n"),
                LineTooLong,
            ),
            ("v1 lone LF", b"PROXY UNKNOWN\n".to_vec(), StrayLineBreak),
            ("v1 lone CR", b"PROXY UNKNOWN\rGET".to_vec(), StrayLineBreak),
            (
                "v1 protocol",
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                UnknownProtocol,
            ),
            ("v1 empty protocol", b"PROXY \r\n".to_vec(), UnknownProtocol),
            (
                "v1 UNKNOWN glued",
                b"PROXY UNKNOWNX\r\n".to_vec(),
                UnknownProtocol,
            ),
            ("v1 TCP4 alone", b"PROXY TCP4\r\n".to_vec(), FieldCount),
            (
                "v1 three fields",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
                FieldCount,
            ),
            (
                "v1 five fields",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n".to_vec(),
                FieldCount,
            ),
            (
                "v1 trailing space",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n".to_vec(),
                FieldCount,
            ),
            (
                "v1 double space",
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n".to_vec(),
                FieldCount,
            ),
            (
                "v1 IPv6 in TCP4",
                b"PROXY TCP4 ::1 ::1 1 2\r\n".to_vec(),
                BadAddress,
            ),
            (
                "v1 IPv4 in TCP6",
                b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n".to_vec(),
                BadAddress,
            ),
            (
                "v1 octet 256",
                b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n".to_vec(),
                BadAddress,
            ),
            (
                "v1 octal-looking octet",
                b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                BadAddress,
            ),
            (
                "v1 bad destination",
                b"PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n".to_vec(),
                BadAddress,
            ),
            (
                "v1 port 65536",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".to_vec(),
                BadPort,
            ),
            (
                "v1 port 99999",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n".to_vec(),
                BadPort,
            ),
            (
                "v1 port with sign",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n".to_vec(),
                BadPort,
            ),
            (
                "v1 port leading zero",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n".to_vec(),
                BadPort,
            ),
            (
                "v1 port hex",
                b"PROXY TCP6 ::1 ::1 1 0x50\r\n".to_vec(),
                BadPort,
            ),
            (
                "v2 version 1",
                v2(0x11, 0x11, &IPV4_BLOCK),
                UnsupportedVersion,
            ),
            (
                "v2 version 3",
                v2(0x31, 0x11, &IPV4_BLOCK),
                UnsupportedVersion,
            ),
            ("v2 command 2", v2(0x22, 0x11, &IPV4_BLOCK), UnknownCommand),
            ("v2 family 4", v2(0x21, 0x41, &IPV4_BLOCK), UnknownFamily),
            ("v2 protocol 3", v2(0x21, 0x13, &IPV4_BLOCK), UnknownFamily),
            (
                "v2 TCP4, len 11",
                v2(0x21, 0x11, &IPV4_BLOCK[..11]),
                AddressBlockTooShort,
            ),
            (
                "v2 TCP6, len 12",
                v2(0x21, 0x21, &IPV4_BLOCK),
                AddressBlockTooShort,
            ),
            ("v2 TCP6, len 0", v2(0x21, 0x21, &[]), AddressBlockTooShort),
        ];
        for (name, bytes, error) in cases {
            assert_eq!(parse_header(&bytes), Err(error), "{name}");
            // Refused as soon as the offending byte is in: no prefix ever
            // completes, and any error on a prefix is already this one.
            for cut in 0..bytes.len() {
                match parse_header(&bytes[..cut]) {
                    Ok(HeaderStatus::Partial) => {}
                    other => assert_eq!(other, Err(error), "{name} at {cut}"),
                }
            }
        }
    }

    #[test]
    fn a_buffer_that_cannot_start_a_header_is_refused_at_once() {
        assert_eq!(parse_header(b""), Ok(HeaderStatus::Partial));
        assert_eq!(parse_header(b"P"), Ok(HeaderStatus::Partial));
        assert_eq!(parse_header(b"\r"), Ok(HeaderStatus::Partial));
        assert_eq!(parse_header(b"\x16"), Err(ProxyError::NoSignature));
        assert_eq!(parse_header(b"PROXX"), Err(ProxyError::NoSignature));
        assert_eq!(parse_header(b"\r\n\r\n\x01"), Err(ProxyError::NoSignature));
    }

    #[test]
    fn cidr_parses_blocks_and_single_addresses() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("::1/128", "::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::/0", "::/0"),
        ];
        for (text, shown) in cases {
            let cidr: Cidr = text.parse().unwrap();
            assert_eq!(cidr.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn cidr_refuses_with_a_reason() {
        let cases = [
            ("", CidrError::BadAddress),
            ("10.0.0/8", CidrError::BadAddress),
            ("example.com", CidrError::BadAddress),
            ("10.0.0.0/33", CidrError::BadPrefixLen { max: 32 }),
            ("10.0.0.0/", CidrError::BadPrefixLen { max: 32 }),
            ("10.0.0.0/+8", CidrError::BadPrefixLen { max: 32 }),
            ("10.0.0.0/8/8", CidrError::BadPrefixLen { max: 32 }),
            ("::/129", CidrError::BadPrefixLen { max: 128 }),
            (
                "10.1.2.3/8",
                CidrError::HostBitsSet {
                    network: "10.0.0.0".parse().unwrap(),
                    prefix_len: 8,
                },
            ),
        ];
        for (text, error) in cases {
            assert_eq!(text.parse::<Cidr>(), Err(error), "{text}");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap_err().to_string(),
            "bits after the prefix are set; did you mean 10.0.0.0/8?"
        );
    }

    #[test]
    fn cidr_contains_its_addresses_only() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("10.0.0.0/8", "::ffff:11.1.2.3", false),
            ("10.0.0.0/8", "::a01:203", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db8::1", true),
            ("::ffff:0:0/96", "::ffff:10.1.2.3", true),
        ];
        for (cidr, peer, inside) in cases {
            let cidr: Cidr = cidr.parse().unwrap();
            let peer: IpAddr = peer.parse().unwrap();
            assert_eq!(cidr.contains(peer), inside, "{cidr} contains {peer}");
        }
    }
}
