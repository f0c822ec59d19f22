//! The tick's maps keyed by run ids and session names: hundreds of lookups a tick, each
//! through SipHash cost about 200 instructions for a short key, a tenth of a 500-run
//! tick's. Fx (rustc's hash: a rotate, xor and multiply per 8 bytes) costs a few dozen.
//! Not DoS-resistant: the keys are our own run ids and the tmux server's session names,
//! and a crafted set of them would slow one tick, not break it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_map_finds_what_it_holds_and_nothing_else() {
        let mut m: FastMap<String, usize> = FastMap::default();
        let keys: Vec<String> = (0..2000)
            .map(|i| format!("bench-{i:04}-agent"))
            .chain(["".into(), "a".into(), "a\0".into(), "é".into()])
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.insert(k.clone(), i), None, "{k:?}");
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k), Some(&i));
        }
        assert_eq!(m.get("bench-2000-agent"), None);
        assert_eq!(m.len(), keys.len());
    }
}
