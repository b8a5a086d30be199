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
