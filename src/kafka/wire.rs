//! A bounds-checked cursor over peer bytes, for the few fields the proxy reads by hand
//! (request headers, Produce `acks`). Every read returns an error instead of panicking.

use super::error::ProtocolError;

/// Reads big-endian Kafka primitives from a byte slice, front to back.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        let truncated = || ProtocolError::Truncated {
            what,
            at: self.pos,
            needed: n,
            found: self.buf.len().saturating_sub(self.pos),
        };
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, ProtocolError> {
        self.array(what).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        self.array(what).map(i32::from_be_bytes)
    }

    /// Kafka's unsigned varint (at most 5 bytes for a u32; a longer one is malformed).
    pub(crate) fn unsigned_varint(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>(what)?;
            // The fifth byte may only carry the top 4 bits of a u32.
            if i == 4 && b > 0x0f {
                return Err(ProtocolError::Malformed(format!(
                    "{what}: varint overflows u32"
                )));
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtocolError::Malformed(format!(
            "{what}: varint longer than 5 bytes"
        )))
    }

    /// A nullable STRING (int16 length, -1 for null). Invalid UTF-8 is replaced, not rejected:
    /// Kafka's own decoder is lenient there, and the proxy forwards these bytes unchanged anyway.
    pub(crate) fn nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, ProtocolError> {
        let len = self.i16(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| ProtocolError::Malformed(format!("{what}: negative length {len}")))?;
        Ok(Some(
            String::from_utf8_lossy(self.take(len, what)?).into_owned(),
        ))
    }

    /// Skips a nullable STRING without decoding it.
    pub(crate) fn skip_nullable_string(&mut self, what: &'static str) -> Result<(), ProtocolError> {
        let len = self.i16(what)?;
        if len == -1 {
            return Ok(());
        }
        let len = usize::try_from(len)
            .map_err(|_| ProtocolError::Malformed(format!("{what}: negative length {len}")))?;
        self.take(len, what).map(drop)
    }

    /// Skips a COMPACT_NULLABLE_STRING (unsigned varint length + 1, 0 for null).
    pub(crate) fn skip_compact_nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<(), ProtocolError> {
        let len_plus_one = self.unsigned_varint(what)?;
        let Some(len) = len_plus_one.checked_sub(1) else {
            return Ok(());
        };
        let len = usize::try_from(len)
            .map_err(|_| ProtocolError::Malformed(format!("{what}: length {len} too large")))?;
        self.take(len, what).map(drop)
    }

    /// Skips a tagged-field section (flexible versions): a count, then (tag, size, bytes) each.
    /// Every field takes at least two bytes, so a huge count fails fast on truncation.
    pub(crate) fn skip_tagged_fields(&mut self, what: &'static str) -> Result<(), ProtocolError> {
        let count = self.unsigned_varint(what)?;
        for _ in 0..count {
            let _tag = self.unsigned_varint(what)?;
            let size = self.unsigned_varint(what)?;
            let size = usize::try_from(size)
                .map_err(|_| ProtocolError::Malformed(format!("{what}: size {size} too large")))?;
            self.take(size, what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    #[test]
    fn varint_reads_multi_byte_values() {
        // 300 = 0b1_0010_1100 → 0xac 0x02
        let mut r = Reader::new(&[0xac, 0x02]);
        assert_eq!(r.unsigned_varint("v").unwrap(), 300);
        assert_eq!(r.position(), 2);
    }

    #[test]
    fn varint_reads_u32_max_and_rejects_overflow() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(r.unsigned_varint("v").unwrap(), u32::MAX);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(matches!(
            r.unsigned_varint("v"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn take_past_end_is_truncated_not_panic() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(matches!(
            r.take(4, "x"),
            Err(ProtocolError::Truncated {
                what: "x",
                at: 0,
                needed: 4,
                found: 3
            })
        ));
        assert!(matches!(
            r.take(usize::MAX, "x"),
            Err(ProtocolError::Truncated { .. })
        ));
        assert_eq!(r.take(3, "x").unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn negative_string_length_other_than_null_is_malformed() {
        let mut r = Reader::new(&[0xff, 0xfe]);
        assert!(matches!(
            r.nullable_string("s"),
            Err(ProtocolError::Malformed(_))
        ));
    }
}
