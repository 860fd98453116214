//! One integration-test binary: a module per area keeps link time down.

mod generate;
mod support;
mod escaping;
