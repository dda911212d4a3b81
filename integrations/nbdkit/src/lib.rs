//! The envol nbdkit plugin is C (`integrations/nbdkit/envol.c`, built by
//! `integrations/nbdkit/build.sh`); this crate holds its tests, which start
//! nbdkit on a unix socket and use it through qemu-img, qemu-io and
//! nbdcopy (`tests/clients.rs`).
