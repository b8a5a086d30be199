//! WebSocket frames (RFC 6455 section 5).
//!
//! ```text
//!  byte 0          byte 1          bytes 2..                       then
//!  7 6 5 4 3..0    7 6.......0
//! +-+-+-+-+-------+-+-------------+-------------------------------+----------------+---------
//! |F|R|R|R| opcode|M| payload len | extended payload length       | masking key    | payload
//! |I|S|S|S|  (4)  |A|     (7)     | 0, 2 or 8 bytes, big-endian   | 0 or 4 bytes   | (len)
//! |N|V|V|V|       |S|             |                               | (if MASK = 1)  |
//! | |1|2|3|       |K|             |                               |                |
//! +-+-+-+-+-------+-+-------------+-------------------------------+----------------+---------
//!
//! payload len 0..=125   the length itself, no extended field
//! payload len 126       a 16-bit length follows  (126..=65535)
//! payload len 127       a 64-bit length follows  (65536.., most significant bit 0)
//! ```
//!
//! Example (RFC 6455 section 5.7), a masked "Hello" from a client:
//! `81 85 37 fa 21 3d 7f 9f 4d 51 58`: FIN + text, MASK + length 5, key
//! `37 fa 21 3d`, then "Hello" XORed with the key byte by byte.
//!
//! `parse_header` checks every rule that can be judged from the header
//! alone; rules that need the connection's state (is a fragmented message
//! open? is the peer a client that must mask? which RSV bits did an
//! extension give a meaning, and on which frames?) live in `proto::ws`.
//! After `parse_header` succeeds no accessor here can panic.

use super::Status;

/// Opcodes (RFC 6455 section 5.2, 11.8). 0x3-0x7 and 0xB-0xF are reserved.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;

    /// Control frames have the high bit of the opcode set (section 5.5).
    pub const fn is_control(op: u8) -> bool {
        op & 0x8 != 0
    }

    /// The opcode's name, for the trace.
    pub const fn name(op: u8) -> &'static str {
        match op {
            CONTINUATION => "continuation",
            TEXT => "text",
            BINARY => "binary",
            CLOSE => "close",
            PING => "ping",
            PONG => "pong",
            _ => "reserved",
        }
    }
}

/// RSV1 in [`FrameHeader::rsv`] (and in the `rsv` of [`parse_header_with`]
/// and [`write_header_with_rsv`]): the bit `permessage-deflate` uses to mark
/// a compressed message (RFC 7692 section 6).
pub const RSV1: u8 = 0b100;

/// Bit masks of the first two bytes.
mod field {
    pub const FIN: u8 = 0x80;
    pub const RSV: u8 = 0x70;
    pub const OPCODE: u8 = 0x0F;
    pub const MASK: u8 = 0x80;
    pub const LEN7: u8 = 0x7F;
    /// Length values of the 7-bit field that announce a longer field.
    pub const LEN_16: u8 = 126;
    pub const LEN_64: u8 = 127;
}

/// The largest payload of a control frame (section 5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Which length form a header of `header_len` bytes (as `parse_header`
    /// returned it) used on the wire: 7, 16 or 64 bits. Read from the
    /// header's size, not from the value: a sender must use the shortest
    /// form (section 5.2), and the trace should show when one did not.
    pub fn length_form(&self, header_len: usize) -> u8 {
        let mask = if self.mask.is_some() { 4 } else { 0 };
        match header_len.saturating_sub(2 + mask) {
            0 => 7,
            2 => 16,
            _ => 64,
        }
    }
}

/// A header that breaks a rule of section 5.2 or 5.5. Every variant is a
/// protocol error (close code 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// An RSV bit set that no negotiated extension gives a meaning
    /// (section 5.2: "MUST be 0 unless an extension is negotiated that
    /// defines meanings for non-zero values"): RSV1 without
    /// `permessage-deflate`, RSV2 and RSV3 always.
    ReservedBits,
    /// An opcode reserved for future use (section 5.2).
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload (section 5.5).
    ControlTooLong,
    /// A control frame with FIN = 0 (section 5.5: "MUST NOT be fragmented").
    FragmentedControl,
    /// A 64-bit length with its most significant bit set (section 5.2).
    LengthTooLarge,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::ReservedBits => {
                f.write_str("reserved bits set that no negotiated extension defines")
            }
            FrameError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            FrameError::ControlTooLong => f.write_str("control frame payload over 125 bytes"),
            FrameError::FragmentedControl => f.write_str("fragmented control frame"),
            FrameError::LengthTooLarge => f.write_str("64-bit length with the top bit set"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Parses a frame header from the start of `buf`, with no extension
/// negotiated: every RSV bit must be 0.
///
/// `Complete((header, n))`: the header is the first `n` bytes (2 to 14) and
/// the payload follows. `Partial`: fewer bytes than the header needs.
pub fn parse_header(buf: &[u8]) -> Result<Status<(FrameHeader, usize)>, FrameError> {
    parse_header_with(buf, 0)
}

/// [`parse_header`] on a connection whose extensions define the RSV bits
/// in `extension_rsv` (RSV1 = [`RSV1`] for `permessage-deflate`): those may
/// be set, the others not. On which frames an extension's bit may appear
/// is the extension's rule, checked by the caller (`proto::ws`).
pub fn parse_header_with(
    buf: &[u8],
    extension_rsv: u8,
) -> Result<Status<(FrameHeader, usize)>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(Status::Partial);
    };
    let fin = b0 & field::FIN != 0;
    let rsv = (b0 & field::RSV) >> 4;
    let op = b0 & field::OPCODE;
    let masked = b1 & field::MASK != 0;
    let len7 = b1 & field::LEN7;

    // Section 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that
    // defines meanings for non-zero values".
    if rsv & !extension_rsv != 0 {
        return Err(FrameError::ReservedBits);
    }
    // Section 5.2: "If an unknown opcode is received, the receiving endpoint
    // MUST _Fail the WebSocket Connection_."
    if !matches!(
        op,
        opcode::CONTINUATION
            | opcode::TEXT
            | opcode::BINARY
            | opcode::CLOSE
            | opcode::PING
            | opcode::PONG
    ) {
        return Err(FrameError::ReservedOpcode(op));
    }
    if opcode::is_control(op) {
        // Section 5.5: "All control frames MUST have a payload length of 125
        // bytes or less and MUST NOT be fragmented."
        if !fin {
            return Err(FrameError::FragmentedControl);
        }
        if u64::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::ControlTooLong);
        }
    }

    let ext_len = match len7 {
        field::LEN_16 => 2,
        field::LEN_64 => 8,
        _ => 0,
    };
    let mask_len = if masked { 4 } else { 0 };
    let header_len = 2 + ext_len + mask_len;
    if buf.len() < header_len {
        return Ok(Status::Partial);
    }
    let payload_len = match len7 {
        field::LEN_16 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        field::LEN_64 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            // Section 5.2: "the most significant bit MUST be 0".
            if n >> 63 != 0 {
                return Err(FrameError::LengthTooLarge);
            }
            n
        }
        n => u64::from(n),
    };
    // A non-minimal length (say 5 in the 16-bit form) breaks a sender's MUST
    // but is unambiguous; like most receivers we accept it.
    let mask = masked.then(|| {
        let k = 2 + ext_len;
        [buf[k], buf[k + 1], buf[k + 2], buf[k + 3]]
    });
    Ok(Status::Complete((
        FrameHeader {
            fin,
            rsv,
            opcode: op,
            mask,
            payload_len,
        },
        header_len,
    )))
}

/// How many header bytes a frame with this payload length takes.
pub const fn header_len(payload_len: u64, masked: bool) -> usize {
    let ext = if payload_len <= 125 {
        0
    } else if payload_len <= 0xFFFF {
        2
    } else {
        8
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// Appends a frame header using the shortest length form (section 5.2:
/// "the minimal number of bytes MUST be used to encode the length").
pub fn write_header(out: &mut Vec<u8>, fin: bool, op: u8, mask: Option<[u8; 4]>, payload_len: u64) {
    write_header_with_rsv(out, fin, 0, op, mask, payload_len);
}

/// [`write_header`] with RSV bits set (`rsv` as in [`FrameHeader::rsv`]:
/// [`RSV1`] marks a compressed message's first frame, RFC 7692 section 6).
pub fn write_header_with_rsv(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    op: u8,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) {
    let b0 = if fin { field::FIN } else { 0 } | ((rsv << 4) & field::RSV) | (op & field::OPCODE);
    let m = if mask.is_some() { field::MASK } else { 0 };
    out.push(b0);
    if payload_len <= 125 {
        out.push(m | payload_len as u8);
    } else if payload_len <= 0xFFFF {
        out.push(m | field::LEN_16);
        out.extend_from_slice(&(payload_len as u16).to_be_bytes());
    } else {
        out.push(m | field::LEN_64);
        out.extend_from_slice(&payload_len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a whole unmasked frame (what a server sends, section 5.1: "A
/// server MUST NOT mask any frames that it sends to the client").
pub fn write_frame(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    out.reserve(header_len(payload.len() as u64, false) + payload.len());
    write_header(out, true, op, None, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// [`write_frame`] for a compressed message (RFC 7692 section 6): FIN and
/// RSV1 set, `payload` already compressed.
pub fn write_compressed_frame(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    out.reserve(header_len(payload.len() as u64, false) + payload.len());
    write_header_with_rsv(out, true, RSV1, op, None, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Appends a whole masked frame (what a client sends; used by tests and the
/// load generator).
pub fn write_masked_frame(out: &mut Vec<u8>, fin: bool, op: u8, key: [u8; 4], payload: &[u8]) {
    write_masked_frame_with_rsv(out, fin, 0, op, key, payload);
}

/// [`write_masked_frame`] with RSV bits (a compressing client's frames).
pub fn write_masked_frame_with_rsv(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    op: u8,
    key: [u8; 4],
    payload: &[u8],
) {
    write_header_with_rsv(out, fin, rsv, op, Some(key), payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}

/// XORs `buf` with the masking key (section 5.3): byte `i` of the payload
/// with `key[i % 4]`. `offset` is the position of `buf[0]` within the
/// payload, so a payload can be unmasked piece by piece as it arrives.
///
/// Masking is involutive: the same call masks and unmasks.
///
/// Works eight bytes at a time: the key, rotated to `offset` and repeated
/// twice, is one `u64`, so each step is one load, one XOR, one store.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let r = offset % 4;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // The tail is shorter than 8 bytes and starts at a multiple of 8, which
    // is a multiple of 4: the key is in phase again.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// A one-line rendering of a header of `header_len` bytes for `--trace`:
/// `FIN=1 RSV=000 op=text(0x1) MASK=1 key=37fa213d len=5 (7-bit)`. The
/// length form is the one on the wire (see [`FrameHeader::length_form`]).
pub fn describe(h: &FrameHeader, header_len: usize) -> String {
    let key = match h.mask {
        Some(k) => format!(" key={:02x}{:02x}{:02x}{:02x}", k[0], k[1], k[2], k[3]),
        None => String::new(),
    };
    format!(
        "FIN={} RSV={:03b} op={}({:#x}) MASK={}{} len={} ({}-bit)",
        u8::from(h.fin),
        h.rsv,
        opcode::name(h.opcode),
        h.opcode,
        u8::from(h.mask.is_some()),
        key,
        h.payload_len,
        h.length_form(header_len)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(buf: &[u8]) -> (FrameHeader, usize) {
        match parse_header(buf) {
            Ok(Status::Complete(x)) => x,
            other => panic!("{other:?}"),
        }
    }

    // RFC 6455 section 5.7: "A single-frame unmasked text message".
    #[test]
    fn rfc_unmasked_hello() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = header(&wire);
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, n),
            (true, 1, None, 5, 2)
        );
        let mut out = Vec::new();
        write_frame(&mut out, opcode::TEXT, b"Hello");
        assert_eq!(out, wire);
    }

    // RFC 6455 section 5.7: "A single-frame masked text message".
    #[test]
    fn rfc_masked_hello() {
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = header(&wire);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut payload = wire[n..].to_vec();
        apply_mask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");
        let mut out = Vec::new();
        write_masked_frame(
            &mut out,
            true,
            opcode::TEXT,
            [0x37, 0xfa, 0x21, 0x3d],
            b"Hello",
        );
        assert_eq!(out, wire);
    }

    // RFC 6455 section 5.7: "A fragmented unmasked text message".
    #[test]
    fn rfc_fragmented_hel_lo() {
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (h1, _) = header(&first);
        let (h2, _) = header(&second);
        assert_eq!((h1.fin, h1.opcode), (false, opcode::TEXT));
        assert_eq!((h2.fin, h2.opcode), (true, opcode::CONTINUATION));
        let mut out = Vec::new();
        write_header(&mut out, false, opcode::TEXT, None, 3);
        out.extend_from_slice(b"Hel");
        assert_eq!(out, first);
    }

    // RFC 6455 section 5.7: unmasked ping and masked pong with "Hello".
    #[test]
    fn rfc_ping_and_masked_pong() {
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, _) = header(&ping);
        assert_eq!(h.opcode, opcode::PING);
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = header(&pong);
        assert_eq!((h.opcode, n), (opcode::PONG, 6));
    }

    // RFC 6455 section 5.7: 256 bytes binary in a single unmasked frame.
    #[test]
    fn rfc_256_bytes_uses_the_16_bit_form() {
        let (h, n) = header(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.payload_len, n, h.length_form(n)), (256, 4, 16));
        let mut out = Vec::new();
        write_header(&mut out, true, opcode::BINARY, None, 256);
        assert_eq!(out, [0x82, 0x7E, 0x01, 0x00]);
    }

    // RFC 6455 section 5.7: 64 KiB binary in a single unmasked frame.
    #[test]
    fn rfc_64k_uses_the_64_bit_form() {
        let wire = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        let (h, n) = header(&wire);
        assert_eq!((h.payload_len, n, h.length_form(n)), (65536, 10, 64));
        let mut out = Vec::new();
        write_header(&mut out, true, opcode::BINARY, None, 65536);
        assert_eq!(out, wire);
    }

    #[test]
    fn length_form_boundaries() {
        for (len, hl) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            write_header(&mut out, true, opcode::BINARY, None, len);
            assert_eq!(out.len(), hl);
            assert_eq!(header_len(len, false), hl);
            assert_eq!(header(&out).0.payload_len, len);
        }
    }

    #[test]
    fn partial_at_every_cut() {
        let wire = [0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 1, 2, 3, 4];
        for cut in 0..wire.len() {
            assert_eq!(parse_header(&wire[..cut]), Ok(Status::Partial), "cut {cut}");
        }
        assert_eq!(header(&wire).1, 14);
    }

    #[test]
    fn rsv_bits_are_refused() {
        for b0 in [0xC1, 0xA1, 0x91] {
            assert_eq!(parse_header(&[b0, 0x80]), Err(FrameError::ReservedBits));
        }
    }

    #[test]
    fn reserved_opcodes_are_refused() {
        for op in (3..=7).chain(0xB..=0xF) {
            assert_eq!(
                parse_header(&[0x80 | op, 0x80]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frame_over_125_is_refused() {
        assert_eq!(
            parse_header(&[0x89, 0xFE, 0, 126]),
            Err(FrameError::ControlTooLong)
        );
    }

    #[test]
    fn fragmented_control_frame_is_refused() {
        assert_eq!(
            parse_header(&[0x09, 0x80]),
            Err(FrameError::FragmentedControl)
        );
    }

    #[test]
    fn length_with_top_bit_is_refused() {
        let wire = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_header(&wire), Err(FrameError::LengthTooLarge));
    }

    #[test]
    fn mask_in_pieces_equals_mask_at_once() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(pieces, whole, "cut {cut}");
        }
        for (i, b) in whole.iter().enumerate() {
            assert_eq!(*b, data[i] ^ key[i % 4]);
        }
    }

    #[test]
    fn describe_names_every_field() {
        let (h, n) = header(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            describe(&h, n),
            "FIN=1 RSV=000 op=text(0x1) MASK=1 key=37fa213d len=5 (7-bit)"
        );
    }

    #[test]
    fn describe_shows_the_length_form_on_the_wire_not_the_shortest() {
        // 5 bytes announced in the 16-bit form (legal to receive, not minimal).
        let (h, n) = header(&[0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4]);
        assert_eq!((h.payload_len, n), (5, 8));
        assert!(
            describe(&h, n).ends_with("len=5 (16-bit)"),
            "{}",
            describe(&h, n)
        );
        let (h, n) = header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 200]);
        assert!(
            describe(&h, n).ends_with("len=200 (64-bit)"),
            "{}",
            describe(&h, n)
        );
    }

    #[test]
    fn rsv1_is_accepted_only_when_an_extension_defines_it() {
        let wire = [0xC1, 0x80, 1, 2, 3, 4];
        assert_eq!(parse_header(&wire), Err(FrameError::ReservedBits));
        let (h, n) = match parse_header_with(&wire, RSV1) {
            Ok(Status::Complete(x)) => x,
            other => panic!("{other:?}"),
        };
        assert_eq!((h.rsv, h.opcode, n), (RSV1, opcode::TEXT, 6));
    }

    #[test]
    fn rsv2_and_rsv3_are_refused_even_with_rsv1_defined() {
        for b0 in [0xA1, 0x91, 0xF1] {
            assert_eq!(
                parse_header_with(&[b0, 0x80], RSV1),
                Err(FrameError::ReservedBits)
            );
        }
    }

    // RFC 7692 section 7.2.3.1: "Hello" compressed, one frame, RSV1 set.
    #[test]
    fn rfc7692_compressed_hello_frame() {
        let deflated = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut out = Vec::new();
        write_compressed_frame(&mut out, opcode::TEXT, &deflated);
        assert_eq!(out, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let (h, n) = match parse_header_with(&out, RSV1) {
            Ok(Status::Complete(x)) => x,
            other => panic!("{other:?}"),
        };
        assert_eq!((h.fin, h.rsv, h.payload_len, n), (true, RSV1, 7, 2));
        assert_eq!(
            describe(&h, n),
            "FIN=1 RSV=100 op=text(0x1) MASK=0 len=7 (7-bit)"
        );
    }
}
