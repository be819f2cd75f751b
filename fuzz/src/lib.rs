//! What the fuzz targets share: showing an input the way a regression test
//! would spell it.

/// `bytes` as a Rust byte-string literal (`b"GET /\r\n"`), so a failing input
/// in a panic message can be pasted straight into a unit test.
pub fn literal(bytes: &[u8]) -> String {
    let escaped: String = bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!("b\"{escaped}\"")
}
