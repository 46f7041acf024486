//! ChaCha20's key stream one block at a time, the 16 state words in
//! registers, XORed into the data a word at a time: the payload's fast path
//! where there is no AVX2 (MIPS, ARM). RustCrypto's portable backend writes
//! each key stream block to a buffer and XORs it in byte by byte, which took
//! 60 % of roadie's instructions on mipsel with this cipher (bench/results.md,
//! "On the router's CPU").

/// Bytes per block.
pub const BLOCK: usize = 64;

#[inline(always)]
fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

/// XORs the key stream that starts at `input` (its word 12 is the block
/// counter) into `data`'s whole blocks; returns how many bytes that was.
/// The bytes past the last whole block are not touched.
pub fn xor_blocks(input: &[u32; 16], data: &mut [u8]) -> usize {
    let whole = data.len() / BLOCK * BLOCK;
    let mut state = *input;
    for chunk in data[..whole].chunks_exact_mut(BLOCK) {
        let mut x = state;
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
        match words(chunk) {
            // russh's payload starts 4 bytes into its buffer: aligned, so
            // plain word loads and stores (on MIPS the unaligned kind is two
            // instructions each way).
            Some(words) => {
                for (i, word) in words.iter_mut().enumerate() {
                    let k = x[i].wrapping_add(state[i]);
                    *word = (u32::from_le(*word) ^ k).to_le();
                }
            }
            None => {
                for (i, word) in chunk.chunks_exact_mut(4).enumerate() {
                    let mut bytes = [0u8; 4];
                    bytes.copy_from_slice(word);
                    let k = x[i].wrapping_add(state[i]);
                    word.copy_from_slice(&(u32::from_le_bytes(bytes) ^ k).to_le_bytes());
                }
            }
        }
        // A packet is at most a few hundred blocks: the 32-bit counter of
        // this nonce layout does not wrap within one.
        state[12] = state[12].wrapping_add(1);
    }
    whole
}

/// `chunk` as 16 words when it is 4-byte aligned.
#[allow(unsafe_code)]
#[inline(always)]
fn words(chunk: &mut [u8]) -> Option<&mut [u32]> {
    // SAFETY: every bit pattern is a valid u32, and align_to_mut gives the
    // aligned middle only; with no head and no tail that is the whole chunk.
    let (head, words, tail) = unsafe { chunk.align_to_mut::<u32>() };
    (head.is_empty() && tail.is_empty()).then_some(words)
}
