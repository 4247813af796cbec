//! The layout of the rank lookup table, shared by `build.rs`, which writes it, and the counter,
//! which reads it: an open-addressing table of little-endian `u32` slots, probed linearly from
//! where a token's hash points. A slot holds a rank in its low bits and more bits of its token's
//! hash above them, so that a probe rarely compares the bytes of a token that only shares the slot.

pub const RANK_BITS: u32 = 18;
pub const RANK_MASK: u32 = (1 << RANK_BITS) - 1;
pub const EMPTY: u32 = u32::MAX;

/// Slots for this many tokens. For `o200k_base` that is three quarters full: half full made
/// counting only about 5% faster for a quarter more memory, as the tags keep long probes cheap.
pub fn table_len(tokens: usize) -> usize {
    assert!(tokens < RANK_MASK as usize, "ranks fit a slot");
    tokens.next_power_of_two()
}

/// FxHash over eight bytes at a time, with a final mix so that both the high bits (the index)
/// and the low ones (the tag) depend on every byte.
pub fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = bytes.len() as u64;
    let (words, rest) = bytes.as_chunks::<8>();
    for &word in words {
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    if !rest.is_empty() {
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    (hash ^ (hash >> 32)).wrapping_mul(K)
}

/// Where the probe for `hash` starts in a table of `len` slots (a power of two).
pub fn start(hash: u64, len: usize) -> usize {
    (hash >> 40) as usize & (len - 1)
}

pub fn next(slot: usize, len: usize) -> usize {
    (slot + 1) & (len - 1)
}

/// The slot's bits that must match `hash` before the token's bytes are compared.
pub fn tag(hash: u64) -> u32 {
    hash as u32 & !RANK_MASK
}
