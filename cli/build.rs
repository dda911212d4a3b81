//! Tells the tests which outside services this machine has (see
//! `build/services.rs`).

include!("../build/services.rs");

fn main() {
    services();
}
