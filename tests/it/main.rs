//! One integration-test binary: a module per area keeps link time down.

mod escaping;
mod faults;
mod generate;
mod hostile;
mod manage;
mod orphans;
mod packaging;
mod runtime;
mod support;
