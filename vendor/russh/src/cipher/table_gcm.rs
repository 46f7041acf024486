// roadie patch: aes128-gcm@openssh.com and aes256-gcm@openssh.com from
// crates/table-aes (see mod.rs for when); the same packet layout as gcm.rs:
// the packet length is sent in clear and authenticated as additional data.

use std::convert::TryInto;

use rand_core::Rng;

use super::super::Error;
use crate::keys::key::safe_rng;
use crate::mac::MacAlgorithm;

/// The key length: 16 or 32.
pub struct TableGcmCipher(pub(crate) usize);

impl super::Cipher for TableGcmCipher {
    fn key_len(&self) -> usize {
        self.0
    }

    fn nonce_len(&self) -> usize {
        12
    }

    fn make_opening_key(
        &self,
        k: &[u8],
        n: &[u8],
        _: &[u8],
        _: &dyn MacAlgorithm,
    ) -> Box<dyn super::OpeningKey + Send> {
        Box::new(Key(new_gcm(k, n)))
    }

    fn make_sealing_key(
        &self,
        k: &[u8],
        n: &[u8],
        _: &[u8],
        _: &dyn MacAlgorithm,
    ) -> Box<dyn super::SealingKey + Send> {
        Box::new(Key(new_gcm(k, n)))
    }
}

fn new_gcm(k: &[u8], n: &[u8]) -> table_aes::Gcm {
    // The key exchange derives exactly key_len and nonce_len bytes, as for
    // gcm.rs's ring keys.
    #[allow(clippy::unwrap_used)]
    table_aes::Gcm::new(k, n.try_into().unwrap()).unwrap()
}

pub struct Key(table_aes::Gcm);

const TAG_LEN: usize = 16;

impl super::OpeningKey for Key {
    fn decrypt_packet_length(
        &self,
        _sequence_number: u32,
        encrypted_packet_length: &[u8],
    ) -> [u8; 4] {
        #[allow(clippy::unwrap_used, clippy::indexing_slicing)]
        encrypted_packet_length.try_into().unwrap()
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn open<'a>(
        &mut self,
        _sequence_number: u32,
        ciphertext_and_tag: &'a mut [u8],
    ) -> Result<&'a [u8], Error> {
        let data_end = ciphertext_and_tag
            .len()
            .checked_sub(TAG_LEN)
            .filter(|&end| end >= super::PACKET_LENGTH_LEN)
            .ok_or(Error::DecryptionError)?;
        let (packet, tag) = ciphertext_and_tag.split_at_mut(data_end);
        let (packet_length, data) = packet.split_at_mut(super::PACKET_LENGTH_LEN);
        #[allow(clippy::unwrap_used)]
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().unwrap();
        self.0
            .open(packet_length, data, tag)
            .map_err(|_| Error::DecryptionError)?;
        Ok(data)
    }
}

impl super::SealingKey for Key {
    fn padding_length(&self, payload: &[u8]) -> usize {
        let block_size = 16;
        let extra_len = super::PACKET_LENGTH_LEN + super::PADDING_LENGTH_LEN;
        let padding_len = if payload.len() + extra_len <= super::MINIMUM_PACKET_LEN {
            super::MINIMUM_PACKET_LEN - payload.len() - super::PADDING_LENGTH_LEN
        } else {
            block_size - ((super::PADDING_LENGTH_LEN + payload.len()) % block_size)
        };
        if padding_len < super::PACKET_LENGTH_LEN {
            padding_len + block_size
        } else {
            padding_len
        }
    }

    fn fill_padding(&self, padding_out: &mut [u8]) {
        safe_rng().fill_bytes(padding_out);
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn seal(
        &mut self,
        _sequence_number: u32,
        plaintext_in_ciphertext_out: &mut [u8],
        tag: &mut [u8],
    ) {
        #[allow(clippy::indexing_slicing)] // the packet has its length field
        let (packet_length, data) =
            plaintext_in_ciphertext_out.split_at_mut(super::PACKET_LENGTH_LEN);
        tag.copy_from_slice(&self.0.seal(packet_length, data));
    }
}
