//! Keyed BLAKE2b event signatures, as `ecoshare.domain.identity.sign_event`.

use blake2b_simd::Params;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Hex keyed BLAKE2b-256 over the event type, the record key (its length first, so
/// no split between key and value bytes can forge another) and the value bytes.
pub fn event_signature(signing_key: &[u8], event_type: &[u8], record_key: &[u8], value: &[u8]) -> [u8; 64] {
    let length = format!("\x00{}\x00", record_key.len());
    let digest = Params::new()
        .hash_length(32)
        .key(signing_key)
        .to_state()
        .update(event_type)
        .update(length.as_bytes())
        .update(record_key)
        .update(value)
        .finalize();
    let mut hex = [0u8; 64];
    for (index, byte) in digest.as_bytes().iter().enumerate() {
        hex[2 * index] = HEX[usize::from(byte >> 4)];
        hex[2 * index + 1] = HEX[usize::from(byte & 0x0F)];
    }
    hex
}

/// Constant-time comparison of the expected signature with the one presented.
pub fn signature_matches(
    signing_key: &[u8],
    event_type: &[u8],
    record_key: &[u8],
    value: &[u8],
    presented: &[u8],
) -> bool {
    let expected = event_signature(signing_key, event_type, record_key, value);
    if presented.len() != expected.len() {
        return false;
    }
    expected
        .iter()
        .zip(presented)
        .fold(0u8, |acc, (left, right)| acc | (left ^ right))
        == 0
}
