//! PROXY protocol v1/v2 headers (`server::proxy_protocol`): arbitrary bytes through the
//! parser, and through the exact-length stream reader, which must agree with it.
//!
//! A panic is a crash; so is a header longer than the limits, a length past the input, or a
//! reader that consumed a byte more (or less) than the header the parser saw.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use kafka_mtls_proxy::server::proxy_protocol::{
    V1_MAX_BYTES, V2_FIXED_BYTES, V2_MAX_PAYLOAD_BYTES, parse_header, read_header,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_header(data);
    if let Ok((_, len)) = &parsed {
        assert!(*len <= data.len());
        assert!(*len <= V1_MAX_BYTES.max(V2_FIXED_BYTES + V2_MAX_PAYLOAD_BYTES));
    }
    // Reading from a slice never waits: one poll finishes the future.
    let mut rest = data;
    let read = {
        let mut future = pin!(read_header(&mut rest));
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(read) => read,
            Poll::Pending => panic!("read_header waited on a byte slice"),
        }
    };
    if let Ok(header) = read {
        let consumed = data.len() - rest.len();
        match parsed {
            Ok((expected, len)) => {
                assert_eq!(header, expected);
                assert_eq!(
                    consumed, len,
                    "read_header took other bytes than the header's"
                );
            }
            Err(e) => panic!("read_header accepted what parse_header refused: {e}"),
        }
    }
});
