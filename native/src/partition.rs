//! Kafka's default partitioner for a record key, as `ecoshare.governance.partitioning`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Kafka's murmur2 (`Utils.murmur2`) of `data`, as a signed 32-bit int.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_B28C;
    const M: u32 = 0x5BD1_E995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's murmur2 hash of `data` as a signed 32-bit int.
#[pyfunction(name = "murmur2")]
pub fn murmur2_py(data: &[u8]) -> i32 {
    murmur2(data)
}

/// The partition of `key` among `partitions` (`toPositive(murmur2) % n`).
#[pyfunction]
pub fn key_partition(key: &[u8], partitions: i64) -> PyResult<i64> {
    if partitions <= 0 {
        return Err(PyValueError::new_err("a topic has at least one partition"));
    }
    Ok(i64::from(murmur2(key) & 0x7FFF_FFFF) % partitions)
}
