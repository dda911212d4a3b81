//! The requests this module builds, byte for byte against PyKMIP 0.11.0's
//! encodings of the same messages, and PyKMIP's responses read back
//! (another implementation; `kms/tests/data/kmip/`, `make_golden.py`).

use super::*;

fn golden(text: &str) -> Vec<u8> {
    ::hex::decode(text.trim()).unwrap()
}

macro_rules! golden {
    ($name:literal) => {
        golden(include_str!(concat!(
            "../../../tests/data/kmip/pykmip-",
            $name,
            ".hex"
        )))
    };
}

#[test]
fn requests_match_pykmip_byte_for_byte() {
    let cases = [
        (
            "create",
            golden!("create-request"),
            request(Operation::Create, create_aes256("master-a")),
        ),
        (
            "locate",
            golden!("locate-request"),
            request(Operation::Locate, locate_by_name("master-a")),
        ),
        (
            "get attributes",
            golden!("get-attributes-request"),
            request(Operation::GetAttributes, get_state("6")),
        ),
        (
            "activate",
            golden!("activate-request"),
            request(Operation::Activate, by_uid("6")),
        ),
        (
            "revoke",
            golden!("revoke-request"),
            request(Operation::Revoke, revoke("6", false)),
        ),
        (
            "destroy",
            golden!("destroy-request"),
            request(Operation::Destroy, by_uid("6")),
        ),
        (
            "encrypt",
            golden!("encrypt-request"),
            request(
                Operation::Encrypt,
                encrypt_gcm("6", &[b'k'; 64], &[1; 12], b"ctx"),
            ),
        ),
        (
            "decrypt",
            golden!("decrypt-request"),
            request(
                Operation::Decrypt,
                decrypt_gcm("6", &[b'c'; 64], &[1; 12], b"ctx", &[7; 16]),
            ),
        ),
    ];
    for (what, wire, ours) in cases {
        assert_eq!(
            ::hex::encode(ours.encode().unwrap().as_slice()),
            ::hex::encode(&wire),
            "{what}"
        );
    }
}

#[test]
fn pykmip_responses_read_back() {
    let read = |wire: Vec<u8>, op| parse_response(&Item::decode(&wire).unwrap(), op);

    let Ok(Answer::Success(p)) = read(golden!("encrypt-response"), Operation::Encrypt) else {
        panic!("encrypt response");
    };
    assert_eq!(text_of(&p, tag::UNIQUE_IDENTIFIER), Some("6"));
    assert_eq!(bytes_of(&p, tag::DATA), Some(&[b'c'; 64][..]));
    assert_eq!(bytes_of(&p, tag::AEAD_TAG), Some(&[7; 16][..]));
    assert_eq!(bytes_of(&p, tag::IV_COUNTER_NONCE), None);

    assert_eq!(
        read(golden!("decrypt-failure-response"), Operation::Decrypt),
        Ok(Answer::Failure {
            status: 1,
            reason: reason::GENERAL_FAILURE,
            message: "Operation failed. See the server logs for more information.".into(),
        })
    );

    let Ok(Answer::Success(p)) = read(golden!("locate-response"), Operation::Locate) else {
        panic!("locate response");
    };
    assert_eq!(located(&p), ["3", "5"]);

    let Ok(Answer::Success(p)) = read(golden!("get-attributes-response"), Operation::GetAttributes)
    else {
        panic!("get attributes response");
    };
    assert_eq!(state_of(&p), Some(KeyState::Deactivated));

    // The answer to another operation is not taken for this one's.
    assert_eq!(
        read(golden!("locate-response"), Operation::Encrypt),
        Err(Malformed("answer for another operation"))
    );
    // A request is not a response.
    assert_eq!(
        read(golden!("locate-request"), Operation::Locate),
        Err(Malformed("not a Response Message"))
    );
}

#[test]
fn responses_without_what_is_required_are_malformed() {
    let header = |count: i32| {
        Item::structure(
            tag::RESPONSE_HEADER,
            vec![Item::new(tag::BATCH_COUNT, Value::Integer(count))],
        )
    };
    let item = |status: Option<u32>| {
        let mut v = vec![enumeration(tag::OPERATION, Operation::Locate as u32)];
        if let Some(s) = status {
            v.push(enumeration(tag::RESULT_STATUS, s));
        }
        Item::structure(tag::BATCH_ITEM, v)
    };
    let msg = |items: Vec<Item>| Item::structure(tag::RESPONSE_MESSAGE, items);
    let cases = [
        (msg(vec![item(Some(0))]), "no Response Header"),
        (msg(vec![header(2), item(Some(0))]), "batch count is not 1"),
        (msg(vec![header(1)]), "not exactly one Batch Item"),
        (
            msg(vec![header(1), item(Some(0)), item(Some(0))]),
            "not exactly one Batch Item",
        ),
        (msg(vec![header(1), item(None)]), "no Result Status"),
    ];
    for (m, why) in cases {
        assert_eq!(parse_response(&m, Operation::Locate), Err(Malformed(why)));
    }
    // Success without a payload is an empty payload (Activate, Destroy).
    assert_eq!(
        parse_response(&msg(vec![header(1), item(Some(0))]), Operation::Locate),
        Ok(Answer::Success(Item::structure(
            tag::RESPONSE_PAYLOAD,
            vec![]
        )))
    );
}
