//! The broker's SASL answers to the proxy's SCRAM sign-in: the SaslHandshake and
//! SaslAuthenticate frames, and the SCRAM server-first and server-final messages inside them.
//!
//! Input layout: bit 0 of byte 0 picks SCRAM-SHA-256 (0) or -512 (1), bit 1 which half runs;
//! the rest is split at each `\xff\xfe` pair into messages.
//! - Bit 1 clear: the sign-in (`upstream::fuzzing::scram_sign_in`, the proxy's exchange
//!   against a scripted broker): the messages are the response frames (header and body, no
//!   size prefix) answering SaslHandshake, client-first and client-final in turn.
//! - Bit 1 set: `ScramClient` with a fixed client nonce (the sign-in draws a random one, which no
//!   fuzzed server-first can echo): message 1 is server-first, message 2 server-final.
//!
//! What must hold: no panic, and the broker never gets the proxy signed in without proving it
//! knows the password (a server-final it cannot have computed).

#![no_main]

use bytes::Bytes;
use kafka_mtls_proxy::scram::{Mechanism, ScramClient, ScramError};
use kafka_mtls_proxy::upstream::fuzzing::scram_sign_in;
use kafka_mtls_proxy_fuzz::split;
use libfuzzer_sys::fuzz_target;

/// The client nonce of the direct half: seeds start their server nonce with it.
/// RFC 7677's test vector (user `user`, password `pencil`), so a seed reaches the success path.
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let mechanism = if mode % 2 == 0 {
        Mechanism::Sha256
    } else {
        Mechanism::Sha512
    };
    let messages = split(rest);
    if (mode >> 1) % 2 == 0 {
        let answers = messages.into_iter().map(Bytes::copy_from_slice).collect();
        let result = kafka_mtls_proxy_fuzz::block_on(scram_sign_in(mechanism, answers));
        // The sign-in draws its own random nonce: no fuzzed server-first can echo it, so no
        // answer may ever get the proxy signed in.
        assert!(
            result.is_err(),
            "signed in without a server proof: {result:?}"
        );
        return;
    }
    let Ok(mut client) = ScramClient::new(mechanism, "user", CLIENT_NONCE.to_owned()) else {
        panic!("a fixed user name is refused");
    };
    let server_first = messages.first().copied().unwrap_or_default();
    if client.client_final(server_first, b"pencil").is_err() {
        return;
    }
    let server_final = messages.get(1).copied().unwrap_or_default();
    match client.verify_server_final(server_final) {
        // A server-final that proves the password can only be the one the seeds carry.
        Ok(()) | Err(ScramError::ServerSignature | ScramError::ServerError(_)) => {}
        Err(ScramError::Malformed(_)) => {}
        Err(e) => panic!("unexpected SCRAM error on server-final: {e}"),
    }
});
