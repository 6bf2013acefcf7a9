//! The local runtime (work in progress).
fn main() {}
