//! The one bincode configuration of format v1: little-endian, variable-length integers
//! (docs/reference/FORMAT.md gives the byte rules). Nothing else in the crate calls bincode.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::{Decode, Encode};

use super::error::FormatError;

/// Largest encoded header or body the decoder accepts (bounds allocations on bad input).
pub const MAX_DECODE_BYTES: usize = 256 << 20;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_DECODE_BYTES>>;

const CONFIG: Config =
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<MAX_DECODE_BYTES>();

/// Encodes a value in the v1 configuration.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec only fails on a limit overrun, which the validated sizes
    // of headers and bodies rule out.
    bincode::encode_to_vec(value, CONFIG).unwrap_or_default()
}

/// Decodes a value that must take up all of `bytes`.
pub fn decode_exact<T: Decode<()>>(bytes: &[u8], what: &str) -> Result<T, FormatError> {
    let (value, used) = bincode::decode_from_slice(bytes, CONFIG)
        .map_err(|e| FormatError::Decode { what: what.to_owned(), reason: e.to_string() })?;
    if used != bytes.len() {
        return Err(FormatError::Decode {
            what: what.to_owned(),
            reason: format!("{} trailing bytes after {used}", bytes.len() - used),
        });
    }
    Ok(value)
}
