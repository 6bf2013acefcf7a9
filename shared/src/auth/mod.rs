//! Authentication: password hashing ([`password`]), access tokens ([`jwt`]), the sessions behind
//! them ([`session`]) and password-reset tokens ([`reset_token`]).

pub mod jwt;
pub mod password;
pub mod reset_token;
pub mod session;
