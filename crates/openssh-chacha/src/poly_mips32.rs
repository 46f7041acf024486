//! Poly1305's block loop in MIPS32r2 assembly (`poly1305-mips32.S`, built
//! by build.rs): the same 26-bit limbs and carry order as `poly.rs`, about
//! 90 instructions per 16-byte block where LLVM's code for that loop takes
//! about 195: LLVM moves each partial sum in and out of HI/LO around the
//! `maddu`s, and Rust's inline assembly (unstable on MIPS anyway) cannot
//! name HI/LO, so it is a whole function, where the o32 ABI lets a callee
//! clobber them. A file for the C compiler rather than `global_asm!`, so the
//! OpenWrt SDK's stable Rust builds it too.

#[allow(unsafe_code)]
unsafe extern "C" {
    fn roadie_poly1305_blocks(state: *mut u32, m: *const u8, blocks: usize, hibit: u32);
}

/// Adds each whole 16-byte block of `m` to `h` and multiplies by `r`
/// (`poly.rs`'s `State::blocks`, in assembly).
#[allow(unsafe_code)]
pub fn blocks(r: &[u32; 5], h: &mut [u32; 5], m: &[u8], hibit: u32) {
    let mut state = [r[0], r[1], r[2], r[3], r[4], h[0], h[1], h[2], h[3], h[4]];
    // SAFETY: the function reads `m.len() / 16` whole blocks from `m` and
    // the ten words of `state`, writes `state[5..]` only, and keeps the o32
    // ABI (it saves the callee-saved registers it uses, $16-$23).
    unsafe { roadie_poly1305_blocks(state.as_mut_ptr(), m.as_ptr(), m.len() / 16, hibit) };
    h.copy_from_slice(&state[5..]);
}
