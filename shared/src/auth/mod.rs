//! Authentication: password hashing ([`password`]) and access tokens ([`jwt`]).

pub mod jwt;
pub mod password;
