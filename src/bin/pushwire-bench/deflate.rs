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
//! server. [`Inflate`] remembers the messages it inflated recently and,
//! when one arrives again byte for byte the same, hands back the same
//! result: a lookup and a comparison of a few hundred bytes instead of a
//! decompression. (Subscribers that fall behind hold several messages
//! each, read connection by connection, so the last one alone would not
//! do.)

use std::collections::HashMap;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Inflated messages remembered; past this many, the memory starts afresh.
const REMEMBERED: usize = 1024;

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

/// A cheap key for a compressed message: its length and a hash of all its
/// bytes, eight at a time (a hit is confirmed by comparing every byte).
/// Not the first and last bytes alone: messages of one fan-out differ only
/// in their id and timestamp, which DEFLATE puts in the middle.
type Key = (usize, u64);

fn key(b: &[u8]) -> Key {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    for &byte in words.remainder() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (b.len(), h)
}

/// One decompressor for every connection, and the messages it did lately.
pub struct Inflate {
    d: Decompress,
    /// key -> (compressed, inflated)
    seen: HashMap<Key, (Vec<u8>, Vec<u8>)>,
    last_in: Vec<u8>,
    last_out: Vec<u8>,
    /// Messages inflated, and messages answered from an earlier copy.
    pub inflated: u64,
    pub reused: u64,
}

impl Inflate {
    pub fn new() -> Self {
        Inflate {
            d: Decompress::new(false),
            seen: HashMap::new(),
            last_in: Vec::new(),
            last_out: Vec::new(),
            inflated: 0,
            reused: 0,
        }
    }

    /// The inflated form of one compressed message (RFC 7692 section
    /// 7.2.2), at most `limit` bytes.
    pub fn inflate(&mut self, compressed: &[u8], limit: usize) -> Result<&[u8], String> {
        let k = key(compressed);
        if let Some((c, out)) = self.seen.get(&k) {
            if c.as_slice() == compressed && out.len() <= limit {
                self.reused += 1;
                return Ok(&self.seen[&k].1);
            }
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
        if self.seen.len() >= REMEMBERED {
            self.seen.clear();
        }
        self.last_in.extend_from_slice(compressed);
        let entry = (self.last_in.clone(), self.last_out.clone());
        Ok(&self.seen.entry(k).insert_entry(entry).into_mut().1)
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
