//! ferry's integration tests: the real binary against real registries (one test binary, modules by command).

mod pull;
mod support;
