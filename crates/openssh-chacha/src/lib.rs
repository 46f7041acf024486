//! `chacha20-poly1305@openssh.com` (OpenSSH's PROTOCOL.chacha20poly1305) on
//! RustCrypto's `chacha20` and `poly1305`, for roadie's vendored russh.
//!
//! Why not ring's `chacha20_poly1305_openssh`, which russh uses: ring computes
//! Poly1305 in portable C, which was 40 % of roadie's CPU while receiving bulk
//! data; RustCrypto's picks an AVX2 backend at run time on x86 and is portable
//! code elsewhere (MIPS, ARM), as ring's is. This is its own crate so that
//! Cargo.toml can build it at opt-level 3 while the rest of the binary is
//! optimised for size: the generic cipher code is instantiated here, and at
//! opt-level "z" it ran about 8 times slower (measured).
//!
//! The construction: the 64-byte key is K_2 (first half: payload and MAC key)
//! then K_1 (second half: packet length); the nonce is the sequence number;
//! the Poly1305 key is K_2's keystream block 0 and the payload uses blocks 1
//! on; the tag covers the encrypted length and the ciphertext.
//!
//! On x86_64 with AVX2, the payload's whole 512-byte chunks take this crate's
//! own eight-block key stream (`avx2.rs`, the only unsafe code here, for the
//! SIMD loads and stores); elsewhere they take a one-block scalar key stream
//! (`scalar.rs`) and the tag its own Poly1305 (`poly.rs`); everything else is
//! RustCrypto's.
#![deny(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;
// On x86_64 only the tests use it (AVX2 or RustCrypto's backends serve there).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod poly;
#[cfg(target_arch = "mips")]
mod poly_mips32;
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod scalar;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use poly1305::Poly1305;
use poly1305::universal_hash::{KeyInit, UniversalHash};

pub const KEY_LEN: usize = 64;
pub const TAG_LEN: usize = 16;
pub const PACKET_LENGTH_LEN: usize = 4;

/// The tag did not match, or the packet was shorter than its length field.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPacket;

/// One direction's keys.
pub struct Keys {
    k_1: chacha20::Key,
    k_2: chacha20::Key,
}

impl Keys {
    pub fn new(key_material: &[u8; KEY_LEN]) -> Keys {
        let (k_2, k_1) = key_material.split_at(KEY_LEN / 2);
        let mut keys = Keys {
            k_1: chacha20::Key::default(),
            k_2: chacha20::Key::default(),
        };
        keys.k_1.copy_from_slice(k_1);
        keys.k_2.copy_from_slice(k_2);
        keys
    }

    /// Encrypts or decrypts (the same operation) a packet length with K_1.
    pub fn packet_length(&self, seqn: u32, length: [u8; PACKET_LENGTH_LEN]) -> [u8; 4] {
        let mut length = length;
        stream(&self.k_1, seqn).apply_keystream(&mut length);
        length
    }

    /// `packet` is `packet_length || padding_length || payload || padding`
    /// in the clear; it becomes the encrypted packet, and the tag is
    /// written to `tag_out`. A packet shorter than its length field is left
    /// as it is, with a zero tag (russh never makes one).
    pub fn seal(&self, seqn: u32, packet: &mut [u8], tag_out: &mut [u8; TAG_LEN]) {
        let Some((length, rest)) = packet.split_first_chunk_mut::<PACKET_LENGTH_LEN>() else {
            *tag_out = [0; TAG_LEN];
            return;
        };
        *length = self.packet_length(seqn, *length);
        let (cipher, mac) = self.payload(seqn);
        self.xor_payload(seqn, cipher, rest);
        *tag_out = mac_of(&mac, packet);
    }

    /// Checks `tag` over `packet` (encrypted length || ciphertext) and only
    /// then decrypts the ciphertext in place; returns the plaintext after
    /// the length field. On a bad tag, `packet` is left as it was.
    pub fn open<'a>(
        &self,
        seqn: u32,
        packet: &'a mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<&'a [u8], BadPacket> {
        if packet.len() < PACKET_LENGTH_LEN {
            return Err(BadPacket);
        }
        let (cipher, mac) = self.payload(seqn);
        let want = mac_of(&mac, packet);
        // Every byte is compared, whatever the first difference.
        let diff = want.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(BadPacket);
        }
        let plaintext = &mut packet[PACKET_LENGTH_LEN..];
        self.xor_payload(seqn, cipher, plaintext);
        Ok(plaintext)
    }

    /// K_2's keystream positioned at block 1, and the Poly1305 key: the
    /// first half of block 0.
    fn payload(&self, seqn: u32) -> (ChaCha20, [u8; 32]) {
        let mut cipher = stream(&self.k_2, seqn);
        let mut block0 = [0u8; 64];
        cipher.apply_keystream(&mut block0);
        let mut key = [0u8; 32];
        key.copy_from_slice(&block0[..32]);
        (cipher, key)
    }

    /// XORs K_2's key stream from block 1 on into `data`; `cipher` is that
    /// stream from `payload`. Whole 512-byte chunks (AVX2) or whole blocks
    /// (elsewhere) go the fast way, the rest through `cipher`.
    fn xor_payload(&self, seqn: u32, mut cipher: ChaCha20, data: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        let done = avx2::xor_chunks(&state(&self.k_2, seqn, 1), data);
        #[cfg(not(target_arch = "x86_64"))]
        let done = scalar::xor_blocks(&state(&self.k_2, seqn, 1), data);
        if done > 0 {
            cipher.seek(64 + done as u64);
        }
        cipher.apply_keystream(&mut data[done..]);
    }
}

/// ChaCha20's 16 input words for `key`, OpenSSH's nonce `seqn` and block
/// `block`: what `stream` sets up, for the fast paths.
fn state(key: &chacha20::Key, seqn: u32, block: u32) -> [u32; 16] {
    let mut w = [0u32; 16];
    w[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for (word, bytes) in w[4..12].iter_mut().zip(key.chunks_exact(4)) {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    w[12] = block;
    // Words 13 and 14 stay 0; the sequence number is big-endian in the nonce.
    w[15] = u32::from_le_bytes(seqn.to_be_bytes());
    w
}

fn stream(key: &chacha20::Key, seqn: u32) -> ChaCha20 {
    // OpenSSH's 64-bit nonce is the sequence number; in the 96-bit form the
    // first 4 bytes are zero and the 32-bit block counter starts at 0.
    let mut nonce = chacha20::Nonce::default();
    nonce[8..].copy_from_slice(&seqn.to_be_bytes());
    ChaCha20::new(key, &nonce)
}

/// Poly1305 over `data` without padding. On x86_64, RustCrypto's (whole
/// blocks through its AVX2 backend, then the partial last block); elsewhere
/// `poly.rs`.
#[cfg(target_arch = "x86_64")]
fn mac_of(key: &[u8; 32], data: &[u8]) -> [u8; TAG_LEN] {
    rustcrypto_mac(key, data)
}

#[cfg(not(target_arch = "x86_64"))]
fn mac_of(key: &[u8; 32], data: &[u8]) -> [u8; TAG_LEN] {
    poly::tag(key, data)
}

#[cfg_attr(not(any(target_arch = "x86_64", test)), allow(dead_code))]
fn rustcrypto_mac(key: &[u8; 32], data: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = Poly1305::new(&poly1305::Key::from(*key));
    let (blocks, rest) = poly1305::Block::slice_as_chunks(data);
    mac.update(blocks);
    mac.compute_unpadded(rest).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::chacha20_poly1305_openssh as reference;

    /// A deterministic byte stream (xorshift), so a failure reproduces.
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

    fn key(seed: u64) -> [u8; KEY_LEN] {
        bytes(seed, KEY_LEN).try_into().unwrap()
    }

    /// Packet sizes around the 16-byte Poly1305 block and 64-byte ChaCha20
    /// block edges, up to a full 32 KiB data packet; sequence numbers at
    /// both ends of their range.
    const CASES: &[(usize, u32)] = &[
        (4, 0),
        (8, 1),
        (16, 2),
        (20, 3),
        (28, 7),
        (36, 255),
        (60, 256),
        (64, 65_535),
        (68, 65_536),
        (132, 1 << 24),
        (1_028, u32::MAX - 1),
        (32_788, u32::MAX),
        (35_000, 12_345),
    ];

    #[test]
    fn seals_exactly_as_ring_does() {
        for (i, &(len, seqn)) in CASES.iter().enumerate() {
            let k = key(i as u64 + 1);
            let clear = bytes(i as u64 + 100, len);
            let (mut ours, mut theirs) = (clear.clone(), clear.clone());
            let (mut tag, mut ref_tag) = ([0; TAG_LEN], [0; TAG_LEN]);
            Keys::new(&k).seal(seqn, &mut ours, &mut tag);
            reference::SealingKey::new(&k).seal_in_place(seqn, &mut theirs, &mut ref_tag);
            assert_eq!(ours, theirs, "ciphertext, len {len} seqn {seqn}");
            assert_eq!(tag, ref_tag, "tag, len {len} seqn {seqn}");
        }
    }

    #[test]
    fn opens_what_ring_sealed_and_reads_the_length() {
        for (i, &(len, seqn)) in CASES.iter().enumerate() {
            let k = key(i as u64 + 1);
            let mut clear = bytes(i as u64 + 200, len);
            clear[..4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
            let mut packet = clear.clone();
            let mut tag = [0; TAG_LEN];
            reference::SealingKey::new(&k).seal_in_place(seqn, &mut packet, &mut tag);
            let keys = Keys::new(&k);
            let length = keys.packet_length(seqn, packet[..4].try_into().unwrap());
            assert_eq!(length, clear[..4], "length, len {len} seqn {seqn}");
            let plain = keys.open(seqn, &mut packet, &tag).unwrap();
            assert_eq!(plain, &clear[4..], "plaintext, len {len} seqn {seqn}");
        }
    }

    /// A key-stream path (`xor`, which says how many bytes it did) against
    /// RustCrypto's stream over `cases` of (length, first block, sequence
    /// number): `expect(len)` bytes done and right, the rest untouched.
    /// The scalar key stream takes word loads where the data is 4-byte
    /// aligned and byte-wise ones elsewhere: the same bytes either way.
    #[test]
    fn the_scalar_key_stream_is_the_same_at_every_alignment() {
        let k = chacha20::Key::from([9u8; 32]);
        let clear = bytes(5, 64 * 5);
        let mut want = clear.clone();
        let mut cipher = stream(&k, 7);
        cipher.seek(64u64);
        cipher.apply_keystream(&mut want);
        let mut buf = vec![0u8; clear.len() + 4];
        // Four offsets from one base: one of them is aligned, three are not.
        for offset in 0..4 {
            let data = &mut buf[offset..offset + clear.len()];
            data.copy_from_slice(&clear);
            assert_eq!(scalar::xor_blocks(&state(&k, 7, 1), data), clear.len());
            assert_eq!(data, &want[..], "offset {offset}");
        }
    }

    fn check_key_stream(
        cases: &[(usize, u32, u32)],
        key_seed: u64,
        data_seed: u64,
        xor: fn(&[u32; 16], &mut [u8]) -> usize,
        expect: impl Fn(usize) -> usize,
        unit: &str,
    ) {
        for (i, &(len, block, seqn)) in cases.iter().enumerate() {
            let k =
                chacha20::Key::from(<[u8; 32]>::try_from(bytes(i as u64 + key_seed, 32)).unwrap());
            let clear = bytes(i as u64 + data_seed, len);
            let mut want = clear.clone();
            let mut cipher = stream(&k, seqn);
            cipher.seek(64 * u64::from(block));
            cipher.apply_keystream(&mut want);
            let mut got = clear.clone();
            let done = xor(&state(&k, seqn, block), &mut got);
            assert_eq!(done, expect(len), "len {len}");
            assert_eq!(
                got[..done],
                want[..done],
                "len {len} block {block} seqn {seqn:#x}"
            );
            assert_eq!(
                got[done..],
                clear[done..],
                "len {len}: bytes past the {unit} touched"
            );
        }
    }

    /// The eight-block fast path against RustCrypto's stream: lengths below,
    /// at and around whole chunks, first blocks 0, 1 and far on, and
    /// sequence numbers whose bytes all differ (the nonce's byte order).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_block_key_stream_matches_rustcrypto() {
        // (length, first block, sequence number)
        let cases = [
            (0, 1, 0),
            (511, 1, 7),
            (512, 1, 0x0102_0304),
            (513, 0, 9),
            (1_024, 1, u32::MAX),
            (4_100, 37, 0xdead_beef),
            (32_768, 1, 41),
            (35_000, 500, 1 << 31),
        ];
        let expect = |len: usize| {
            if avx2::available() {
                len / avx2::CHUNK * avx2::CHUNK
            } else {
                0
            }
        };
        check_key_stream(&cases, 7, 300, avx2::xor_chunks, expect, "chunks");
    }

    /// `poly.rs` against RustCrypto's Poly1305: every length around the block
    /// size, long packets, and keys and data of all ones (the final
    /// reduction's edge).
    #[test]
    fn poly1305_matches_rustcrypto() {
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for len in (0..100).chain([1_000, 32_768, 35_004]) {
            cases.push((bytes(len as u64 + 5, 32), bytes(len as u64 + 600, len)));
        }
        for len in [0, 15, 16, 17, 64, 1_000] {
            cases.push((vec![0xff; 32], vec![0xff; len]));
            let mut k = vec![0xff; 32];
            k[16..].fill(0);
            cases.push((k, vec![0xff; len]));
        }
        // Many keys (r's clamped bits, s's carries) over a few packets.
        for seed in 0..300 {
            cases.push((
                bytes(seed * 7 + 1, 32),
                bytes(seed, 16 * (seed as usize % 5) + 33),
            ));
        }
        for (k, data) in &cases {
            let k: [u8; 32] = k.as_slice().try_into().unwrap();
            let want = rustcrypto_mac(&k, data);
            // The data at every offset from a 4-byte boundary (the MIPS
            // assembly has an aligned and an unaligned loop).
            let mut shifted = vec![0u8; data.len() + 8];
            for offset in 0..4 {
                let at = shifted.as_ptr().align_offset(4) + offset;
                shifted[at..at + data.len()].copy_from_slice(data);
                let got = poly::tag(&k, &shifted[at..at + data.len()]);
                assert_eq!(got, want, "len {} offset {offset}", data.len());
            }
        }
    }

    /// The scalar one-block path against RustCrypto's stream, the same way.
    #[test]
    fn scalar_key_stream_matches_rustcrypto() {
        let cases = [
            (0, 1, 0),
            (63, 1, 7),
            (64, 1, 0x0102_0304),
            (65, 0, 9),
            (1_000, 1, u32::MAX),
            (32_768, 1, 41),
            (35_000, 500, 1 << 31),
        ];
        let expect = |len: usize| len / scalar::BLOCK * scalar::BLOCK;
        check_key_stream(&cases, 70, 900, scalar::xor_blocks, expect, "blocks");
    }

    #[test]
    fn refuses_a_changed_byte_or_tag_or_sequence_number_and_leaves_the_packet() {
        let k = key(9);
        let keys = Keys::new(&k);
        let mut sealed = bytes(5, 100);
        let mut tag = [0; TAG_LEN];
        keys.seal(41, &mut sealed, &mut tag);
        for flip in [0, 3, 4, 50, 99] {
            let mut p = sealed.clone();
            p[flip] ^= 0x80;
            let before = p.clone();
            assert_eq!(keys.open(41, &mut p, &tag), Err(BadPacket), "byte {flip}");
            assert_eq!(p, before, "byte {flip}: packet changed on a bad tag");
        }
        let mut bad_tag = tag;
        bad_tag[15] ^= 1;
        assert_eq!(keys.open(41, &mut sealed.clone(), &bad_tag), Err(BadPacket));
        assert_eq!(keys.open(42, &mut sealed.clone(), &tag), Err(BadPacket));
        assert_eq!(keys.open(41, &mut [0u8; 3], &tag), Err(BadPacket));
        assert!(keys.open(41, &mut sealed, &tag).is_ok());
    }
}
