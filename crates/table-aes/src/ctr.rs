//! AES in counter mode with SSH's 128-bit big-endian counter (RFC 4344:
//! the whole IV is the counter), as `aes128-ctr`, `aes192-ctr` and
//! `aes256-ctr` use it.
//!
//! The key is expanded once, when the keys are made: russh's own CTR
//! wrapper builds a new cipher, key schedule included, for every call.

use crate::block::{Aes, load, store};
use cipher::consts::{U16, U24, U32};
use cipher::{InOutBuf, Iv, IvSizeUser, Key, KeyIvInit, KeySizeUser, StreamCipher};
use cipher::{StreamCipherError, typenum::Unsigned};

/// AES-CTR with any key size; `Aes128Ctr` and the others give it the
/// key-size types russh's block-cipher code asks for.
#[derive(Clone)]
pub struct Ctr {
    aes: Aes,
    /// The next counter block, as the four big-endian words of its value.
    counter: [u32; 4],
    /// The block function's first round for the counter's first three
    /// words (`Aes::first_round_of`), which change once in 2^32 blocks.
    first: [u32; 4],
    /// The current key-stream block and how much of it is used (16: all).
    stream: [u8; 16],
    used: usize,
}

impl Ctr {
    /// `key` is 16, 24 or 32 bytes; None otherwise.
    pub fn new(key: &[u8], iv: &[u8; 16]) -> Option<Ctr> {
        let mut counter = [0u32; 4];
        for (c, b) in counter.iter_mut().zip(iv.chunks_exact(4)) {
            *c = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        let aes = Aes::new(key)?;
        Some(Ctr {
            first: first_round(&aes, &counter),
            aes,
            counter,
            stream: [0; 16],
            used: 16,
        })
    }

    /// XORs the key stream into `data` (encrypting and decrypting alike).
    pub fn apply(&mut self, mut data: &mut [u8]) {
        // What is left of a block an earlier call began.
        if self.used < 16 {
            let n = data.len().min(16 - self.used);
            let (head, rest) = data.split_at_mut(n);
            for (d, k) in head.iter_mut().zip(&self.stream[self.used..]) {
                *d ^= k;
            }
            self.used += n;
            data = rest;
        }
        let (blocks, tail) = data.as_chunks_mut::<16>();
        for block in blocks {
            let k = self.next_block();
            let d = load(block);
            store(block, [d[0] ^ k[0], d[1] ^ k[1], d[2] ^ k[2], d[3] ^ k[3]]);
        }
        if !tail.is_empty() {
            let k = self.next_block();
            store(&mut self.stream, k);
            for (d, k) in tail.iter_mut().zip(&self.stream) {
                *d ^= k;
            }
            self.used = tail.len();
        }
    }

    /// The key stream's next block (as little-endian words) and the counter
    /// advanced.
    #[inline(always)]
    fn next_block(&mut self) -> [u32; 4] {
        let c = self.counter;
        let k = self.aes.encrypt_last_word(&self.first, c[3].swap_bytes());
        let (w3, carry) = c[3].overflowing_add(1);
        self.counter[3] = w3;
        if carry {
            self.carry();
        }
        k
    }

    #[cold]
    fn carry(&mut self) {
        for w in self.counter[..3].iter_mut().rev() {
            *w = w.wrapping_add(1);
            if *w != 0 {
                break;
            }
        }
        self.first = first_round(&self.aes, &self.counter);
    }
}

/// The block's bytes are the counter's big-endian bytes; as the
/// little-endian words the block function takes, each word swapped.
fn first_round(aes: &Aes, counter: &[u32; 4]) -> [u32; 4] {
    aes.first_round_of([
        counter[0].swap_bytes(),
        counter[1].swap_bytes(),
        counter[2].swap_bytes(),
    ])
}

macro_rules! ctr_type {
    ($name:ident, $key_size:ty, $bits:literal) => {
        #[doc = concat!("AES-", $bits, "-CTR for russh's block-cipher code (the `cipher` traits).")]
        #[derive(Clone)]
        pub struct $name(Ctr);

        impl KeySizeUser for $name {
            type KeySize = $key_size;
        }

        impl IvSizeUser for $name {
            type IvSize = U16;
        }

        impl KeyIvInit for $name {
            fn new(key: &Key<Self>, iv: &Iv<Self>) -> Self {
                debug_assert_eq!(key.len(), <$key_size>::USIZE);
                let iv: &[u8; 16] = iv.as_ref();
                // The key's length is the type's: Ctr::new cannot refuse it.
                $name(Ctr::new(key, iv).unwrap_or_else(|| unreachable!()))
            }
        }

        impl StreamCipher for $name {
            /// SSH rekeys long before 2^128 blocks.
            fn check_remaining(&self, _data_len: usize) -> Result<(), StreamCipherError> {
                Ok(())
            }

            fn unchecked_apply_keystream_inout(&mut self, buf: InOutBuf<'_, '_, u8>) {
                self.0.apply(buf.into_out_with_copied_in());
            }

            fn unchecked_write_keystream(&mut self, buf: &mut [u8]) {
                buf.fill(0);
                self.0.apply(buf);
            }
        }
    };
}

ctr_type!(Aes128Ctr, U16, "128");
ctr_type!(Aes192Ctr, U24, "192");
ctr_type!(Aes256Ctr, U32, "256");

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), the four blocks at once.
    #[test]
    fn sp800_38a_f_5_1() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
            .try_into()
            .expect("iv");
        let mut data = hex(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        ));
        Ctr::new(&key, &iv).expect("key").apply(&mut data);
        let want = hex(concat!(
            "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff",
            "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"
        ));
        assert_eq!(data, want);
    }

    /// Against RustCrypto's `Ctr128BE<Aes*>` (what russh uses elsewhere):
    /// every key size, counters about to carry across words, and the data
    /// cut into pieces of every length from 0 to 40, so partial blocks are
    /// carried over between calls.
    #[test]
    fn matches_rustcrypto_ctr128be_in_pieces() {
        let ivs: [[u8; 16]; 3] = [
            bytes(1, 16).try_into().expect("iv"),
            [
                0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
            ],
            [0xff; 16],
        ];
        let data = bytes(2, 3000);
        for len in [16, 24, 32] {
            let key = bytes(len as u64, len);
            for iv in &ivs {
                let mut want = data.clone();
                match len {
                    16 => ::ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&key, iv)
                        .expect("key")
                        .apply_keystream(&mut want),
                    24 => ::ctr::Ctr128BE::<aes::Aes192>::new_from_slices(&key, iv)
                        .expect("key")
                        .apply_keystream(&mut want),
                    _ => ::ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&key, iv)
                        .expect("key")
                        .apply_keystream(&mut want),
                }
                let mut ours = Ctr::new(&key, iv).expect("key");
                let mut got = data.clone();
                let mut rest = &mut got[..];
                let mut piece = 0;
                while !rest.is_empty() {
                    let n = (piece % 41).min(rest.len());
                    let (now, later) = rest.split_at_mut(n);
                    ours.apply(now);
                    rest = later;
                    piece += 7;
                }
                assert_eq!(got, want, "key length {len}, iv {iv:02x?}");
            }
        }
    }

    /// Through the `cipher` traits russh calls, and a clone (russh's packet
    /// length probe) does not move the original on.
    #[test]
    fn the_cipher_traits_and_clones() {
        let key = bytes(5, 32);
        let iv = bytes(6, 16);
        let mut a = Aes256Ctr::new_from_slices(&key, &iv).expect("sizes");
        let mut probe = a.clone();
        let mut first = [0u8; 16];
        probe.apply_keystream(&mut first);
        let mut again = [0u8; 16];
        a.apply_keystream(&mut again);
        assert_eq!(first, again);
        assert!(
            Aes128Ctr::new_from_slices(&key, &iv).is_err(),
            "a 32-byte key for AES-128"
        );
    }
}
