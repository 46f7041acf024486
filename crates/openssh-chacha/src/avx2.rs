//! ChaCha20 key stream for eight blocks at a time with AVX2, for bulk data.
//!
//! Why: RustCrypto's AVX2 backend keeps each block's state row by row (two
//! blocks per register, four blocks per call) and spends its time on the
//! shuffles between column and diagonal rounds: it was 49 % of roadie's CPU
//! while receiving bulk data, and what kept it behind OpenSSH (OpenSSL's
//! assembly) with this cipher. Here each register holds one state word of
//! eight consecutive blocks, so the rounds need no shuffles at all and only
//! the output is transposed, the layout OpenSSL's AVX2 code uses.
//!
//! Only whole 512-byte chunks are done here; the caller does the tail.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_or_si256, _mm256_permute2x128_si256,
    _mm256_set1_epi32, _mm256_setr_epi8, _mm256_setr_epi32, _mm256_shuffle_epi8, _mm256_slli_epi32,
    _mm256_srli_epi32, _mm256_storeu_si256, _mm256_unpackhi_epi32, _mm256_unpackhi_epi64,
    _mm256_unpacklo_epi32, _mm256_unpacklo_epi64, _mm256_xor_si256,
};

pub const CHUNK: usize = 8 * 64;

/// Whether this CPU can run `xor_chunks` (std caches the answer).
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// XORs the key stream of `state` (the 16 input words; word 12 is the block
/// counter of the first chunk) into the whole 512-byte chunks of `data`, and
/// returns how many bytes that was. The counter is 32 bits, as in the 96-bit
/// nonce form; SSH packets are far too short for it to wrap.
pub fn xor_chunks(state: &[u32; 16], data: &mut [u8]) -> usize {
    if !available() {
        return 0;
    }
    // SAFETY: AVX2 is present (checked just above).
    unsafe { xor_chunks_avx2(state, data) }
}

#[target_feature(enable = "avx2")]
fn xor_chunks_avx2(state: &[u32; 16], data: &mut [u8]) -> usize {
    let mut done = 0;
    let mut counter = state[12];
    for chunk in data.chunks_exact_mut(CHUNK) {
        let mut words = *state;
        words[12] = counter;
        let stream = blocks8(&words);
        for (j, (lo, hi)) in stream.iter().enumerate() {
            let at = j * 64;
            // SAFETY: `chunk` is exactly CHUNK = 8 * 64 bytes and j < 8, so
            // both 32-byte ranges at `at` and `at + 32` are inside it; the
            // loads and stores are unaligned ones.
            unsafe {
                let p = chunk.as_mut_ptr().add(at).cast::<__m256i>();
                _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), *lo));
                let p = chunk.as_mut_ptr().add(at + 32).cast::<__m256i>();
                _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), *hi));
            }
        }
        counter = counter.wrapping_add(8);
        done += CHUNK;
    }
    done
}

/// The key stream of blocks counter .. counter + 7, each as its two 32-byte
/// halves in little-endian byte order.
#[target_feature(enable = "avx2")]
fn blocks8(state: &[u32; 16]) -> [(__m256i, __m256i); 8] {
    // Word i of all eight blocks; only the counter (word 12) differs.
    let mut input: [__m256i; 16] = core::array::from_fn(|i| _mm256_set1_epi32(state[i] as i32));
    input[12] = _mm256_add_epi32(input[12], _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    let mut x = input;
    for _ in 0..10 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for (w, i) in x.iter_mut().zip(input) {
        *w = _mm256_add_epi32(*w, i);
    }
    let lo = transpose8([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
    let hi = transpose8([x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15]]);
    core::array::from_fn(|j| (lo[j], hi[j]))
}

#[target_feature(enable = "avx2")]
fn quarter(x: &mut [__m256i; 16], a: usize, b: usize, c: usize, d: usize) {
    // Rotations by 16 and 8 move whole bytes: one byte shuffle each.
    let rot16 = _mm256_setr_epi8(
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, //
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
    );
    let rot8 = _mm256_setr_epi8(
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, //
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
    );
    x[a] = _mm256_add_epi32(x[a], x[b]);
    x[d] = _mm256_shuffle_epi8(_mm256_xor_si256(x[d], x[a]), rot16);
    x[c] = _mm256_add_epi32(x[c], x[d]);
    x[b] = rotl::<12, 20>(_mm256_xor_si256(x[b], x[c]));
    x[a] = _mm256_add_epi32(x[a], x[b]);
    x[d] = _mm256_shuffle_epi8(_mm256_xor_si256(x[d], x[a]), rot8);
    x[c] = _mm256_add_epi32(x[c], x[d]);
    x[b] = rotl::<7, 25>(_mm256_xor_si256(x[b], x[c]));
}

/// Rotate each 32-bit lane left by L (R = 32 - L).
#[target_feature(enable = "avx2")]
fn rotl<const L: i32, const R: i32>(v: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_slli_epi32::<L>(v), _mm256_srli_epi32::<R>(v))
}

/// 8x8 transpose of 32-bit words: row i (word i of blocks 0..7) in, row j
/// (words 0..7 of block j) out.
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    // Pairs of words, then quadruples, within each 128-bit half.
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    // u0: words 0..3 of blocks 0 | 4; u1: blocks 1 | 5; u2: 2 | 6; u3: 3 | 7.
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    // The same for words 4..7.
    let v0 = _mm256_unpacklo_epi64(t4, t6);
    let v1 = _mm256_unpackhi_epi64(t4, t6);
    let v2 = _mm256_unpacklo_epi64(t5, t7);
    let v3 = _mm256_unpackhi_epi64(t5, t7);
    // Low halves give blocks 0..3, high halves blocks 4..7.
    [
        _mm256_permute2x128_si256::<0x20>(u0, v0),
        _mm256_permute2x128_si256::<0x20>(u1, v1),
        _mm256_permute2x128_si256::<0x20>(u2, v2),
        _mm256_permute2x128_si256::<0x20>(u3, v3),
        _mm256_permute2x128_si256::<0x31>(u0, v0),
        _mm256_permute2x128_si256::<0x31>(u1, v1),
        _mm256_permute2x128_si256::<0x31>(u2, v2),
        _mm256_permute2x128_si256::<0x31>(u3, v3),
    ]
}
