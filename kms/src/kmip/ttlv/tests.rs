use super::*;

/// Bytes from hex written with spaces and `|` between fields.
fn hex(s: &str) -> Vec<u8> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect();
    ::hex::decode(s).unwrap()
}

fn bytes(v: &[u8]) -> Value {
    Value::Bytes(Zeroizing::new(v.to_vec()))
}

/// The encoding examples of the KMIP 1.4 specification, section 9.1.2.
#[test]
fn specification_examples_encode_and_decode() {
    let cases = [
        (
            Value::Integer(8),
            "420020 | 02 | 00000004 | 00000008 00000000",
        ),
        (
            Value::LongInteger(123_456_789_000_000_000),
            "420020 | 03 | 00000008 | 01B69B4B A5749200",
        ),
        (
            Value::BigInteger(hex("0000000003FD35EB6BC2DF4618080000")),
            "420020 | 04 | 00000010 | 00000000 03FD35EB 6BC2DF46 18080000",
        ),
        (
            Value::Enumeration(255),
            "420020 | 05 | 00000004 | 000000FF 00000000",
        ),
        (
            Value::Boolean(true),
            "420020 | 06 | 00000008 | 00000000 00000001",
        ),
        (
            Value::Text("Hello World".into()),
            "420020 | 07 | 0000000B | 48656C6C 6F20576F 726C6400 00000000",
        ),
        (
            bytes(&[1, 2, 3]),
            "420020 | 08 | 00000003 | 01020300 00000000",
        ),
        (
            Value::DateTime(1_205_495_800),
            "420020 | 09 | 00000008 | 00000000 47DA67F8",
        ),
        (
            Value::Interval(864_000),
            "420020 | 0A | 00000004 | 000D2F00 00000000",
        ),
        (
            Value::Structure(vec![
                Item::new(0x420004, Value::Enumeration(254)),
                Item::new(0x420005, Value::Integer(255)),
            ]),
            "420020 | 01 | 00000020 | 420004 | 05 | 00000004 | 000000FE 00000000 |
             420005 | 02 | 00000004 | 000000FF 00000000",
        ),
    ];
    for (value, wire) in cases {
        let item = Item::new(0x420020, value);
        let wire = hex(wire);
        assert_eq!(
            item.encode().unwrap().as_slice(),
            wire.as_slice(),
            "{item:?}"
        );
        assert_eq!(Item::decode(&wire).unwrap(), item);
        assert_eq!(Item::frame_len(&wire), Some(wire.len()));
    }
}

/// An Encrypt or Decrypt request as envol sends it: KMIP 1.4, AES-GCM.
fn gcm_request(op: u32, data: u8, tag: Option<u8>) -> Item {
    let mut payload = vec![
        Item::new(0x420094, Value::Text("6".into())),
        Item::structure(
            0x42002B,
            vec![
                Item::new(0x420011, Value::Enumeration(9)),
                Item::new(0x420028, Value::Enumeration(3)),
                Item::new(0x4200CE, Value::Integer(16)),
            ],
        ),
        Item::new(0x4200C2, bytes(&[data; 64])),
        Item::new(0x42003D, bytes(&[1; 12])),
        Item::new(0x4200FE, bytes(b"ctx")),
    ];
    if let Some(t) = tag {
        payload.push(Item::new(0x4200FF, bytes(&[t; 16])));
    }
    let version = Item::structure(
        0x420069,
        vec![
            Item::new(0x42006A, Value::Integer(1)),
            Item::new(0x42006B, Value::Integer(4)),
        ],
    );
    Item::structure(
        0x420078,
        vec![
            Item::structure(
                0x420077,
                vec![version, Item::new(0x42000D, Value::Integer(1))],
            ),
            Item::structure(
                0x42000F,
                vec![
                    Item::new(0x42005C, Value::Enumeration(op)),
                    Item::structure(0x420079, payload),
                ],
            ),
        ],
    )
}

/// PyKMIP 0.11.0's encodings of the same two requests (another
/// implementation; `kms/tests/data/kmip/`).
#[test]
fn requests_match_pykmip_byte_for_byte() {
    let golden = [
        (
            include_str!("../../../tests/data/kmip/pykmip-encrypt-request.hex"),
            gcm_request(0x1F, b'k', None),
        ),
        (
            include_str!("../../../tests/data/kmip/pykmip-decrypt-request.hex"),
            gcm_request(0x20, b'c', Some(7)),
        ),
    ];
    for (text, ours) in golden {
        let wire = hex(text);
        assert_eq!(ours.encode().unwrap().as_slice(), wire.as_slice());
        let back = Item::decode(&wire).unwrap();
        assert_eq!(back, ours);
        assert_eq!(back.encode().unwrap().as_slice(), wire.as_slice());
        let payload = back.get(0x42000F).and_then(|b| b.get(0x420079)).unwrap();
        assert_eq!(payload.get(0x4200FE).unwrap().value, bytes(b"ctx"));
        assert_eq!(payload.all(0x4200C2).count(), 1);
    }
}

#[test]
fn malformed_items_are_typed_errors() {
    let int = |len: &str, v: &str| hex(&format!("420020 02 {len} {v}"));
    let cases: [(Vec<u8>, TtlvError); 11] = [
        (hex("420020 02 000000"), TtlvError::Truncated),
        (hex("420020 02 00000004 00000008"), TtlvError::Truncated),
        (
            hex("420020 02 00000004 00000008 00000000 00"),
            TtlvError::TrailingBytes,
        ),
        (hex("420020 0B 00000000"), TtlvError::UnknownType(0x0b)),
        (int("00000008", "00000000 00000008"), TtlvError::BadLength),
        (int("00000004", "00000008 00000001"), TtlvError::BadPadding),
        (
            hex("420020 06 00000008 00000000 00000002"),
            TtlvError::BadBoolean,
        ),
        (
            hex("420020 07 00000002 C3280000 00000000"),
            TtlvError::BadText,
        ),
        (
            hex("420020 04 00000004 00000001 00000000"),
            TtlvError::BadLength,
        ),
        (
            hex("420020 01 00000010 420004 02 00000004 00000001"),
            TtlvError::Truncated,
        ),
        (hex("420020 08 FFFFFFF8"), TtlvError::Truncated),
    ];
    for (wire, want) in cases {
        assert_eq!(Item::decode(&wire), Err(want), "{wire:02x?}");
    }
    // An item whose length field is near u32::MAX is refused, not allocated.
    let huge = hex("420020 01 FFFFFFFF");
    assert_eq!(Item::decode(&huge), Err(TtlvError::Truncated));
}

#[test]
fn limits_bound_depth_items_and_size() {
    // MAX_DEPTH + 2 nested structures.
    let mut item = Item::new(0x420001, Value::Integer(0));
    for _ in 0..=MAX_DEPTH + 1 {
        item = Item::structure(0x420001, vec![item]);
    }
    let wire = item.encode().unwrap();
    assert_eq!(Item::decode(&wire), Err(TtlvError::TooLarge));
    // More than MAX_ITEMS items.
    let many = Item::structure(
        0x420001,
        (0..MAX_ITEMS)
            .map(|_| Item::new(0x420002, Value::Boolean(false)))
            .collect(),
    );
    let wire = many.encode().unwrap();
    assert_eq!(Item::decode(&wire), Err(TtlvError::TooLarge));
    // Larger than MAX_MESSAGE, both ways.
    let big = Item::new(0x420003, bytes(&vec![0; MAX_MESSAGE]));
    assert_eq!(big.encode().map(|_| ()), Err(TtlvError::TooLarge));
    assert_eq!(
        Item::decode(&vec![0; MAX_MESSAGE + 1]),
        Err(TtlvError::TooLarge)
    );
    // Tags wider than 24 bits and big integers not a multiple of 8 bytes
    // are never written.
    let wide = Item::new(0x0100_0000, Value::Integer(1));
    assert_eq!(wide.encode().map(|_| ()), Err(TtlvError::BadTag));
    let odd = Item::new(0x420004, Value::BigInteger(vec![1, 2, 3]));
    assert_eq!(odd.encode().map(|_| ()), Err(TtlvError::BadLength));
}

/// Every prefix and every single-byte change of a real message decodes to
/// an item that re-encodes to the same bytes, or to a typed error.
#[test]
fn any_damage_gives_a_value_or_a_typed_error() {
    let wire = hex(include_str!(
        "../../../tests/data/kmip/pykmip-decrypt-request.hex"
    ));
    for n in 0..wire.len() {
        assert!(Item::decode(&wire[..n]).is_err());
    }
    let mut damaged = wire.clone();
    for i in 0..wire.len() {
        for x in [0x01u8, 0x80, 0xff] {
            damaged[i] ^= x;
            if let Ok(item) = Item::decode(&damaged) {
                assert_eq!(item.encode().unwrap().as_slice(), damaged.as_slice());
            }
            damaged[i] ^= x;
        }
    }
}

#[test]
fn debug_never_shows_byte_strings() {
    let item = Item::new(0x4200C2, bytes(b"secret data key!"));
    let shown = format!("{item:?} {:?}", item.value);
    assert!(
        !shown.contains("secret") && !shown.contains("73 65"),
        "{shown}"
    );
    assert!(shown.contains("16 bytes"));
}
