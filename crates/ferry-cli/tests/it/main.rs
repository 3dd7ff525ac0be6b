//! ferry's integration tests: the real binary against real registries (one test binary, modules by command).

mod archives;
mod auth;
mod bad_input;
mod cache;
mod commands;
mod delta;
mod faults;
mod interrupts;
mod package;
mod package_trust;
mod pull;
mod push;
mod referrers;
mod serve;
mod support;
mod sync;
mod trust;
mod zarf_compat;
