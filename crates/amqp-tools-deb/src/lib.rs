//! Holds no code: this package exists so that `cargo deb` has one crate whose
//! `[package.metadata.deb]` puts all five amqp-* tools, their man pages and their shell
//! completions into a single Debian package (cargo-deb packages one crate at a time, and each
//! tool is its own crate). Build it with scripts/build-deb.
