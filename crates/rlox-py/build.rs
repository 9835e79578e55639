//! Empty on purpose: it exists so that the `[build-dependencies]` of Cargo.toml, which align the
//! host-side (proc-macro) features with the workspace build, are part of this package's graph.
fn main() {}
