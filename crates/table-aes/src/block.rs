//! The AES block function, encryption only (CTR and GCM never decrypt a
//! block), with the four 1 KiB "T-tables" of the AES proposal: each round is
//! 16 table loads and 16 XORs on four 32-bit column words, no byte shuffling.
//!
//! Words are little-endian columns: byte r of column c is `(w[c] >> 8r) as
//! u8`, so loading a block is four plain word loads on little-endian routers
//! (mipsel, ARM).

/// The AES S-box (FIPS-197, figure 7).
const SBOX: [u8; 256] = [
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
];

/// T[r][x]: the MixColumns column of S(x) in row r, as a little-endian word.
/// T[0][x] has the bytes 2·S(x), S(x), S(x), 3·S(x); T[r] is T[0] rotated by
/// r bytes.
static T: [[u32; 256]; 4] = tables();

const fn tables() -> [[u32; 256]; 4] {
    let mut t = [[0u32; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let s = SBOX[x] as u32;
        let s2 = xtime(SBOX[x]) as u32;
        let s3 = s2 ^ s;
        let w = s2 | (s << 8) | (s << 16) | (s3 << 24);
        t[0][x] = w;
        t[1][x] = w.rotate_left(8);
        t[2][x] = w.rotate_left(16);
        t[3][x] = w.rotate_left(24);
        x += 1;
    }
    t
}

/// Multiplication by x in GF(2^8) with AES's polynomial.
const fn xtime(b: u8) -> u8 {
    (b << 1) ^ (if b & 0x80 != 0 { 0x1b } else { 0 })
}

/// The expanded encryption key of AES-128, -192 or -256.
#[derive(Clone)]
pub struct Aes {
    /// 4 × (rounds + 1) round-key words; up to 60 for AES-256.
    rk: [u32; 60],
    rounds: usize,
}

impl Aes {
    /// `key` is 16, 24 or 32 bytes; any other length is None.
    pub fn new(key: &[u8]) -> Option<Aes> {
        let nk = match key.len() {
            16 | 24 | 32 => key.len() / 4,
            _ => return None,
        };
        let rounds = nk + 6;
        let mut rk = [0u32; 60];
        for (w, k) in rk.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([k[0], k[1], k[2], k[3]]);
        }
        let mut rcon = 1u8;
        for i in nk..4 * (rounds + 1) {
            let mut t = rk[i - 1];
            if i % nk == 0 {
                // RotWord (the bytes turn one place: a right rotation of a
                // little-endian word), SubWord, Rcon into the first byte.
                t = sub_word(t.rotate_right(8)) ^ u32::from(rcon);
                rcon = xtime(rcon);
            } else if nk > 6 && i % nk == 4 {
                t = sub_word(t);
            }
            rk[i] = rk[i - nk] ^ t;
        }
        Some(Aes { rk, rounds })
    }

    /// Encrypts one block in place.
    #[inline]
    pub fn encrypt(&self, block: &mut [u8; 16]) {
        let out = self.encrypt_words(load(block));
        store(block, out);
    }

    /// Encrypts one block given and returned as little-endian column words.
    #[inline]
    pub fn encrypt_words(&self, input: [u32; 4]) -> [u32; 4] {
        let rk = &self.rk;
        let s = [
            input[0] ^ rk[0],
            input[1] ^ rk[1],
            input[2] ^ rk[2],
            input[3] ^ rk[3],
        ];
        self.rounds_from(s, 4)
    }

    /// For counter mode, where only a block's last word changes from one
    /// block to the next: the first round's work that depends on the first
    /// three words alone (12 of its 16 table loads), for `encrypt_last_word`.
    pub fn first_round_of(&self, head: [u32; 3]) -> [u32; 4] {
        let rk = &self.rk;
        let (s0, s1, s2) = (head[0] ^ rk[0], head[1] ^ rk[1], head[2] ^ rk[2]);
        // round_column with the last word's byte left out, as below.
        [
            T[0][(s0 & 0xff) as usize]
                ^ T[1][((s1 >> 8) & 0xff) as usize]
                ^ T[2][((s2 >> 16) & 0xff) as usize]
                ^ rk[4],
            T[0][(s1 & 0xff) as usize]
                ^ T[1][((s2 >> 8) & 0xff) as usize]
                ^ T[3][(s0 >> 24) as usize]
                ^ rk[5],
            T[0][(s2 & 0xff) as usize]
                ^ T[2][((s0 >> 16) & 0xff) as usize]
                ^ T[3][(s1 >> 24) as usize]
                ^ rk[6],
            T[1][((s0 >> 8) & 0xff) as usize]
                ^ T[2][((s1 >> 16) & 0xff) as usize]
                ^ T[3][(s2 >> 24) as usize]
                ^ rk[7],
        ]
    }

    /// Encrypts the block whose first three words gave `first` (from
    /// `first_round_of`) and whose last word is `last`: the same result as
    /// `encrypt_words`, four table loads fewer. Always inlined: called per
    /// block, it saved and restored seven registers and rebuilt the tables'
    /// addresses each time (1.3 G instructions per GiB of aes256-ctr on
    /// mipsel, 1 %).
    #[inline(always)]
    pub fn encrypt_last_word(&self, first: &[u32; 4], last: u32) -> [u32; 4] {
        let s3 = last ^ self.rk[3];
        let s = [
            first[0] ^ T[3][(s3 >> 24) as usize],
            first[1] ^ T[2][((s3 >> 16) & 0xff) as usize],
            first[2] ^ T[1][((s3 >> 8) & 0xff) as usize],
            first[3] ^ T[0][(s3 & 0xff) as usize],
        ];
        self.rounds_from(s, 8)
    }

    /// The rounds from round key word `k` on, the last one included.
    #[inline(always)]
    fn rounds_from(&self, s: [u32; 4], mut k: usize) -> [u32; 4] {
        let rk = &self.rk;
        let [mut s0, mut s1, mut s2, mut s3] = s;
        // Round r's key is rk[4r..4r+4]; the last round has no MixColumns.
        while k < 4 * self.rounds {
            let t0 = round_column(s0, s1, s2, s3) ^ rk[k];
            let t1 = round_column(s1, s2, s3, s0) ^ rk[k + 1];
            let t2 = round_column(s2, s3, s0, s1) ^ rk[k + 2];
            let t3 = round_column(s3, s0, s1, s2) ^ rk[k + 3];
            (s0, s1, s2, s3) = (t0, t1, t2, t3);
            k += 4;
        }
        [
            last_column(s0, s1, s2, s3) ^ rk[k],
            last_column(s1, s2, s3, s0) ^ rk[k + 1],
            last_column(s2, s3, s0, s1) ^ rk[k + 2],
            last_column(s3, s0, s1, s2) ^ rk[k + 3],
        ]
    }
}

/// One output column of SubBytes, ShiftRows and MixColumns: row r comes from
/// column c + r (ShiftRows), so the inputs are the columns c, c+1, c+2, c+3.
#[inline(always)]
fn round_column(a: u32, b: u32, c: u32, d: u32) -> u32 {
    T[0][(a & 0xff) as usize]
        ^ T[1][((b >> 8) & 0xff) as usize]
        ^ T[2][((c >> 16) & 0xff) as usize]
        ^ T[3][(d >> 24) as usize]
}

/// The last round's column: SubBytes and ShiftRows only.
#[inline(always)]
fn last_column(a: u32, b: u32, c: u32, d: u32) -> u32 {
    u32::from(SBOX[(a & 0xff) as usize])
        | u32::from(SBOX[((b >> 8) & 0xff) as usize]) << 8
        | u32::from(SBOX[((c >> 16) & 0xff) as usize]) << 16
        | u32::from(SBOX[(d >> 24) as usize]) << 24
}

fn sub_word(w: u32) -> u32 {
    u32::from_le_bytes(w.to_le_bytes().map(|b| SBOX[b as usize]))
}

#[inline(always)]
pub(crate) fn load(b: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

#[inline(always)]
pub(crate) fn store(b: &mut [u8; 16], w: [u32; 4]) {
    for (out, w) in b.chunks_exact_mut(4).zip(w) {
        out.copy_from_slice(&w.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::Aes;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// FIPS-197 appendix C: one plaintext, the three key sizes.
    #[test]
    fn fips_197_appendix_c() {
        let cases = [
            (
                "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "dda97ca4864cdfe06eaf70a0ec0d7191",
            ),
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089",
            ),
        ];
        for (key, want) in cases {
            let aes = Aes::new(&hex(key)).expect("key length");
            let mut block: [u8; 16] = hex("00112233445566778899aabbccddeeff")
                .try_into()
                .expect("16 bytes");
            aes.encrypt(&mut block);
            assert_eq!(block.to_vec(), hex(want), "key {key}");
        }
    }

    /// The counter-mode shortcut gives what the whole block function gives.
    #[test]
    fn the_first_round_shortcut_is_the_same_block_function() {
        for len in [16, 24, 32] {
            let key: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let aes = Aes::new(&key).expect("key");
            for i in 0u32..300 {
                let head = [i.wrapping_mul(0x9e37_79b9), !i, i.rotate_left(13)];
                let first = aes.first_round_of(head);
                for last in [0, 1, 0xff, 0x100, i.wrapping_mul(0x0101_0101), u32::MAX] {
                    let want = aes.encrypt_words([head[0], head[1], head[2], last]);
                    assert_eq!(
                        aes.encrypt_last_word(&first, last),
                        want,
                        "{len} {i} {last}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_key_lengths_are_refused() {
        for len in [0, 15, 17, 31, 33, 64] {
            assert!(Aes::new(&vec![0; len]).is_none(), "{len}");
        }
    }

    /// Against RustCrypto's constant-time AES (what russh uses elsewhere),
    /// on keys and blocks from a simple generator.
    #[test]
    fn matches_rustcrypto_aes() {
        use aes::cipher::{BlockCipherEncrypt, KeyInit};
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        for len in [16, 24, 32] {
            for _ in 0..200 {
                let key: Vec<u8> = (0..len).map(|_| next()).collect();
                let mut block = [0u8; 16];
                block.iter_mut().for_each(|b| *b = next());
                let mut want = aes::Block::from(block);
                match len {
                    16 => aes::Aes128::new_from_slice(&key)
                        .expect("key")
                        .encrypt_block(&mut want),
                    24 => aes::Aes192::new_from_slice(&key)
                        .expect("key")
                        .encrypt_block(&mut want),
                    _ => aes::Aes256::new_from_slice(&key)
                        .expect("key")
                        .encrypt_block(&mut want),
                }
                Aes::new(&key).expect("key").encrypt(&mut block);
                assert_eq!(block, <[u8; 16]>::from(want), "key {key:02x?}");
            }
        }
    }
}
