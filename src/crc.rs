//! CRC-32C (Castagnoli), the checksum of Kafka's record batches and of our
//! own metadata and snapshot files.
//!
//! Computed with `crc-fast`, which folds with VPCLMULQDQ/AVX-512 where the
//! CPU has it (and with SSE4.2 or in software where not): about twice the
//! `crc32c` crate's speed on batch-sized buffers here (63 vs 30 GB/s on
//! 256 KiB), and the produce path checks every batch's CRC.

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    // The algorithm's width is 32 bits: the u64 holds a u32.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn matches_the_castagnoli_check_value() {
        // The catalogue's check value for CRC-32/ISCSI over "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn agrees_with_the_reference_crate_at_every_length() {
        // Lengths around each SIMD path's block and threshold sizes.
        let data: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in (0..600).chain([1023, 1024, 1025, 4095, 4096, 4097, 65_535, 65_536, 70_000]) {
            assert_eq!(crc32c(&data[..len]), crc32c::crc32c(&data[..len]), "length {len}");
        }
    }
}
