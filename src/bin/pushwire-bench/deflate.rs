//! `--deflate`: the generator's side of `permessage-deflate` (RFC 7692),
//! written here with `flate2` rather than with the server's code.
//!
//! The server answers every offer with both `*_no_context_takeover`
//! parameters, so each message is compressed and inflated on its own:
//! the generator compresses its echo message once, at setup, and sends the
//! same bytes every time; what it receives it inflates with one
//! decompressor, reset per message.
//!
//! A fan-out delivers the same compressed bytes to every subscriber, so
//! inflating 10,000 identical copies would measure the generator, not the
//! server. [`Inflate`] remembers the last message it inflated and, when
//! the next one is byte for byte the same, hands back the same result
//! (a comparison of a few hundred bytes instead of a decompression).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The offer, as browsers make it.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The end of the empty stored block a sync flush leaves; the sender
/// removes it, the receiver puts it back (RFC 7692 section 7.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// `data` compressed as one message: raw DEFLATE, a fresh window, a sync
/// flush, the tail removed (RFC 7692 section 7.2.1).
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let used = c.total_in() as usize;
        if c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
            .is_err()
        {
            break;
        }
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(4096));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    out
}

/// One decompressor for every connection, and the last message it did.
pub struct Inflate {
    d: Decompress,
    last_in: Vec<u8>,
    last_out: Vec<u8>,
    /// Messages inflated, and messages answered from the last one.
    pub inflated: u64,
    pub reused: u64,
}

impl Inflate {
    pub fn new() -> Self {
        Inflate {
            d: Decompress::new(false),
            last_in: Vec::new(),
            last_out: Vec::new(),
            inflated: 0,
            reused: 0,
        }
    }

    /// The inflated form of one compressed message (RFC 7692 section
    /// 7.2.2), at most `limit` bytes.
    pub fn inflate(&mut self, compressed: &[u8], limit: usize) -> Result<&[u8], String> {
        if compressed == self.last_in.as_slice() && !self.last_in.is_empty() {
            self.reused += 1;
            return Ok(&self.last_out);
        }
        self.inflated += 1;
        self.last_in.clear();
        self.last_out.clear();
        self.d.reset(false);
        'pieces: for piece in [compressed, &TAIL[..]] {
            let start = self.d.total_in();
            loop {
                let used = (self.d.total_in() - start) as usize;
                self.last_out.reserve(4096);
                let room = self.last_out.capacity() - self.last_out.len();
                let out0 = self.last_out.len();
                let status = self
                    .d
                    .decompress_vec(&piece[used..], &mut self.last_out, FlushDecompress::Sync)
                    .map_err(|e| {
                        format!("the server's compressed message does not inflate: {e}")
                    })?;
                if self.last_out.len() > limit {
                    return Err("a compressed message inflated past the limit".into());
                }
                if status == Status::StreamEnd {
                    break 'pieces; // a final block: the message ends there
                }
                let made = self.last_out.len() - out0;
                let now_used = (self.d.total_in() - start) as usize;
                if now_used == piece.len() && made < room {
                    break;
                }
                if now_used == used && made == 0 {
                    return Err("the server's compressed message does not inflate".into());
                }
            }
        }
        self.last_in.extend_from_slice(compressed);
        Ok(&self.last_out)
    }
}

/// About `n` bytes of JSON records, the kind of text a real-time server
/// carries: `{"user":"u417","event":"click","x":312,"y":88,"seq":12},...`.
pub fn json_text(n: usize) -> String {
    let mut s = String::from("[");
    for i in 0u32.. {
        let record = format!(
            "{{\"user\":\"u{}\",\"event\":\"{}\",\"x\":{},\"y\":{},\"seq\":{}}}",
            i * 7919 % 1000,
            ["click", "scroll", "view", "hover"][i as usize % 4],
            i * 37 % 1280,
            i * 91 % 720,
            i
        );
        if s.len() + record.len() + 2 > n {
            break;
        }
        if i > 0 {
            s.push(',');
        }
        s.push_str(&record);
    }
    // Whole records only; spaces (JSON whitespace) make up the size.
    while s.len() + 1 < n {
        s.push(' ');
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reuse() {
        let text = json_text(1024);
        assert_eq!(text.len(), 1024);
        let z = compress(text.as_bytes());
        assert!(z.len() < 600, "{}", z.len());
        let mut i = Inflate::new();
        assert_eq!(i.inflate(&z, 1 << 20).unwrap(), text.as_bytes());
        assert_eq!(i.inflate(&z, 1 << 20).unwrap(), text.as_bytes());
        assert_eq!((i.inflated, i.reused), (1, 1));
        // RFC 7692 section 7.2.3.1: "Hello".
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(i.inflate(&hello, 100).unwrap(), b"Hello");
        assert!(i.inflate(&z, 100).is_err());
    }
}
