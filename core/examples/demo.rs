//! The main job, for now: encrypt a small volume image sector by sector with
//! the detected backend, show the image holds no plaintext, decrypt it back,
//! and check a published IEEE 1619 vector on every backend this CPU has.
//!
//! Run: `cargo run --release -p envol --example demo`

#![allow(clippy::cast_possible_truncation)] // test data and indices

use envol::xts::{Backend, Xts};

const SECTOR: usize = 4096;
/// IEEE 1619-2007 Annex B vector 10 key (key1 ‖ key2: digits of e and pi).
const VECTOR10_KEY: &str = "27182818284590452353602874713526624977572470936999595749669676273141592653589793238462643383279502884197169399375105820974944592";
const SECTORS: usize = 256; // a 1 MiB image

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("envol {} - XTS-AES sector engine demo", envol::VERSION);
    let available: Vec<&str> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .map(|b| b.name())
        .collect();
    println!("backends available here: {}", available.join(", "));

    // A data key as the key service would hand it out (here: fixed, for a demo).
    let mut key = [0u8; 64];
    for (i, k) in key.iter_mut().enumerate() {
        *k = (i as u8).wrapping_mul(97).wrapping_add(13);
    }
    let xts = Xts::new(&key)?;
    println!("detected backend: {} ({:?})", xts.backend(), xts.key_size());

    // A guest writes recognisable data into every sector.
    let mut image = vec![0u8; SECTOR * SECTORS];
    for (n, sector) in image.chunks_mut(SECTOR).enumerate() {
        let line = format!("guest sector {n:05} says hello; ");
        for (i, b) in sector.iter_mut().enumerate() {
            *b = line.as_bytes()[i % line.len()];
        }
    }
    let plain = image.clone();

    xts.encrypt_sectors(0, SECTOR, &mut image)?;
    let leaked = image.windows(11).any(|w| w == b"guest secto");
    println!(
        "encrypted {} sectors of {} bytes; plaintext visible in the image: {}",
        SECTORS,
        SECTOR,
        if leaked { "YES (bug)" } else { "no" }
    );
    println!("sector 0 starts {}", hex(&image[..16]));

    // Random access: decrypt sector 200 alone, as a read of that sector would.
    let mut one = image[200 * SECTOR..201 * SECTOR].to_vec();
    xts.decrypt_sectors(200, SECTOR, &mut one)?;
    println!(
        "sector 200 alone decrypts to: {:?}",
        String::from_utf8_lossy(&one[..32])
    );

    xts.decrypt_sectors(0, SECTOR, &mut image)?;
    println!(
        "whole image decrypts back: {}",
        if image == plain { "ok" } else { "MISMATCH" }
    );

    // IEEE 1619-2007 Annex B vector 10: XTS-AES-256, data unit 0xff, 512 bytes.
    let v_key: Vec<u8> = (0..64)
        .map(|i| u8::from_str_radix(&VECTOR10_KEY[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()?;
    let mut v = (0..512).map(|i| i as u8).collect::<Vec<u8>>();
    let expect_start = "1c3b3a102f770386e4836c99e370cf9b";
    let expect_end = "c4f36ffda9fcea70b9c6e693e148c151";
    let mut all_ok = true;
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        let x = Xts::with_backend(&v_key, b)?;
        let mut buf = v.clone();
        x.encrypt_sectors(0xff, 512, &mut buf)?;
        let ok = hex(&buf[..16]) == expect_start && hex(&buf[496..]) == expect_end;
        x.decrypt_sectors(0xff, 512, &mut buf)?;
        let ok = ok && buf == v;
        all_ok &= ok;
        println!(
            "IEEE 1619 vector 10 on {:<8} {}",
            b.name(),
            if ok { "ok" } else { "FAILED" }
        );
    }
    v.iter_mut().for_each(|b| *b = 0);
    if !all_ok || leaked || image != plain {
        return Err("demo found a mismatch".into());
    }
    println!("done: every check passed");
    Ok(())
}
