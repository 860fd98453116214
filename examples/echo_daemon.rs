//! Example daemon (filled in by the runtime work).
fn main() {}
