//! Opaque page cursors: the id of the last item of a page, base64url-encoded.
//!
//! Clients cannot read them, and since every list rebuilds its full index key from a validated
//! UUID, a forged cursor can only ever name "an id", never an arbitrary key of the table.

use crate::store::ListError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn decode_cursor(cursor: &str) -> Result<Uuid, ListError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| ListError::BadCursor)?;
    Uuid::from_slice(&bytes).map_err(|_| ListError::BadCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_forgeries() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        for bad in ["", "!!!", "YWJj", &URL_SAFE_NO_PAD.encode(b"{\"pk\":\"USER#1\"}")] {
            assert!(matches!(decode_cursor(bad), Err(ListError::BadCursor)), "{bad}");
        }
    }
}
