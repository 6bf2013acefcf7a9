//! Serde helpers shared by request types wherever they live (handlers, domain inputs).

/// An optional field may be left out, but not sent as `null`: the API documents a value, and a
/// client sending `null` most likely meant something else than "leave it as it is".
pub fn absent_or_value<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}
