//! Writes OpenAI's `o200k_base` vocabulary into OUT_DIR as flat tables for `tokens::o200k`: the
//! ordinary tokens' bytes back to back in rank order, where each token ends (`u32`,
//! little-endian), and a hash table from token bytes to rank (see `slots.rs`). tiktoken-rs keeps
//! the vocabulary in hash maps of small vectors that take about 50 MiB once loaded; reading it out
//! here leaves that cost in the build. The bridge maps these 3.2 MiB with its code and touches only
//! the pages that its lookups reach: nothing until the first chat request.

use std::{env, fs, path::PathBuf};

#[path = "src/tokens/o200k/slots.rs"]
mod slots;

/// The ordinary tokens of `o200k_base`; a table of another length would count differently.
const TOKENS: usize = 199_998;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/tokens/o200k/slots.rs");
    let bpe = tiktoken_rs::o200k_base().expect("tiktoken-rs builds o200k_base");
    let special = bpe.special_tokens();
    let mut tokens = Vec::new();
    // The ordinary tokens hold the ranks from 0 up without a gap; the special ones come after it.
    for rank in 0u32.. {
        let Ok(token) = bpe.decode_bytes(&[rank]) else {
            break;
        };
        assert!(
            !special.iter().any(|s| s.as_bytes() == token),
            "rank {rank} is a special token"
        );
        tokens.push(token);
    }
    assert_eq!(tokens.len(), TOKENS, "o200k_base's ordinary tokens");

    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    let mut table = vec![slots::EMPTY; slots::table_len(tokens.len())];
    for (rank, token) in tokens.iter().enumerate() {
        bytes.extend_from_slice(token);
        let end = u32::try_from(bytes.len()).expect("the vocabulary fits u32 offsets");
        ends.extend_from_slice(&end.to_le_bytes());
        let hash = slots::hash(token);
        let mut at = slots::start(hash, table.len());
        while table[at] != slots::EMPTY {
            at = slots::next(at, table.len());
        }
        table[at] = slots::tag(hash) | rank as u32;
    }
    let table: Vec<u8> = table.iter().flat_map(|slot| slot.to_le_bytes()).collect();

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, data) in [("bytes", bytes), ("ends", ends), ("slots", table)] {
        fs::write(out.join(format!("o200k_base.{name}")), data)
            .expect("write the o200k_base tables");
    }
}
