//! KMIP key servers (feature `kmip`). So far: the TTLV codec the client
//! will speak (KMIP 1.4 over mutually authenticated TLS 1.2; see
//! docs/notes/kmip-feasibility.md for what PyKMIP's server supports).

pub mod ttlv;
