//! The raw WebSocket client's side of RFC 6455, written here by hand so that
//! the suites can send exactly the bytes they mean (valid or not) without
//! sharing any code with the server: opcodes, the handshake key, and masked
//! client frames.

/// Frame opcodes (RFC 6455 section 5.2).
pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The RFC 6455 section 1.3 / 4.2.2 example key and its accept value.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every client frame built here.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The header of a masked client frame: first byte `b0` (FIN | RSV |
/// opcode, as given), the mask bit with the shortest encoding of `len`, then
/// `MASK`. The `len` payload bytes (masked) are the caller's to send, so a
/// frame can be cut short on purpose.
pub fn frame_header(b0: u8, len: usize) -> Vec<u8> {
    let mut f = vec![b0];
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&MASK);
    f
}

/// A whole masked client frame: [`frame_header`], then `payload` masked
/// with `MASK`.
pub fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_header(b0, payload.len());
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// A masked client frame with RSV bits clear.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(if fin { 0x80 } else { 0 } | opcode, payload)
}

/// The payload of a close frame: the code, big-endian, then `reason`.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// The `permessage-deflate` transform of RFC 7692 section 7.2, done here
/// with `flate2` directly (not with the server's code): raw DEFLATE, a
/// fresh window for every message (the server always answers
/// `client_no_context_takeover`), a sync flush, the `00 00 ff ff` tail
/// removed.
pub fn deflate_message(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(4096));
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "sync flush tail");
    out.truncate(out.len() - 4);
    out
}

/// The receiving side of RFC 7692 section 7.2.2: the tail put back,
/// inflated with a fresh window (the server answers
/// `server_no_context_takeover`).
pub fn inflate_message(data: &[u8]) -> Vec<u8> {
    use flate2::{Decompress, FlushDecompress};
    let mut d = Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() * 4 + 64);
    loop {
        let consumed = d.total_in() as usize;
        d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("the server's compressed message is valid DEFLATE");
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// About `n` bytes of JSON records, the kind of text a real-time server
/// carries (and compresses well, but not absurdly).
pub fn json_text(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0u32;
    while s.len() < n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"user\":\"u{}\",\"event\":\"{}\",\"x\":{},\"y\":{},\"seq\":{}}}",
            i * 7919 % 1000,
            ["click", "scroll", "view", "hover"][i as usize % 4],
            i * 37 % 1280,
            i * 91 % 720,
            i
        ));
        i += 1;
    }
    s.push(']');
    s
}
