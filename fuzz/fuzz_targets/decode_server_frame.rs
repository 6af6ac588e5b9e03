//! Fuzzes the client-side classifier: any bytes a server sends must decode to a message or an
//! error, never panic. Decoded messages must encode and decode to the same message.

#![no_main]

use askless_protocol::decode_server_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The transport delivers text frames only, so the decoder only ever sees valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_server_frame(text) {
        let again = decode_server_frame(&message.encode()).expect("an encoded message decodes");
        assert_eq!(again, message, "encoding and decoding changed the message");
    }
});
