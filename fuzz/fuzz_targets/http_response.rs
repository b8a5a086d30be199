//! `wire::http1`'s client side: the response heads the webhook sender reads
//! (RFC 9112 sections 4 and 6.3).
//!
//! Input: one byte choosing whether the request was a HEAD, then a split
//! plan, then the bytes a receiver sent back.
//!
//! Properties:
//! * `parse_response_head` on the whole input never panics, and a
//!   `Complete` length is at most the input;
//! * fed as a growing buffer (the way reads arrive), the first answer that
//!   is not `Partial` equals the answer for the whole input: a Complete head
//!   stays the same head when more bytes follow, a refusal stays one;
//! * for a Complete head, `response_body` follows RFC 9112 section 6.3:
//!   no body for HEAD, 1xx, 204, 304; `Transfer-Encoding` wins over
//!   `Content-Length`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire::wire::http1::{parse_response_head, response_body, ResponseBody, MAX_HEADERS};
use pushwire::wire::Status;
use pushwire_fuzz::Input;

const MAX: usize = 4096;

/// (status, head length, body framing) or the error, owned.
fn answer(buf: &[u8], head_request: bool) -> Option<Result<(u16, usize, String), String>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_response_head(buf, &mut headers, MAX) {
        Ok(Status::Partial) => None,
        Err(e) => Some(Err(format!("{e:?}"))),
        Ok(Status::Complete((head, n))) => {
            assert!(n <= buf.len());
            let framing = response_body(&head, head_request);
            if head_request || head.status < 200 || head.status == 204 || head.status == 304 {
                assert_eq!(framing, Ok(ResponseBody::None));
            }
            let has_te = head.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
            if has_te && framing.is_ok() && framing != Ok(ResponseBody::None) {
                assert!(matches!(framing, Ok(ResponseBody::Chunked | ResponseBody::UntilClose)));
            }
            Some(Ok((head.status, n, format!("{framing:?}"))))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let head_request = input.byte() & 1 == 1;
    let plan = input.plan();
    let bytes = input.rest();
    let whole = answer(bytes, head_request);
    let mut end = 0;
    for piece in plan.pieces(bytes) {
        end += piece.len();
        if let Some(a) = answer(&bytes[..end], head_request) {
            // A complete head is complete whatever follows it, and a
            // refusal stays a refusal: the answer never depends on the cut.
            assert_eq!(Some(a), whole);
            break;
        }
    }
});
