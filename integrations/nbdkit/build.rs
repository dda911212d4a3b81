//! Tells the tests whether nbdkit and the NBD clients are installed (see
//! `build/services.rs`).

include!("../../build/services.rs");

fn main() {
    services();
}
