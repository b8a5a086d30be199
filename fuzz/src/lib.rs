//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Most of pushwire's parsers are streaming: TCP hands them bytes in
//! arbitrary pieces, and the result must not depend on where the pieces
//! were cut. The targets check that by feeding the same bytes whole and in
//! pieces. [`Input::plan`] reads *where* to cut from the first bytes of the
//! fuzz input, so libFuzzer mutates the cut points like any other byte and
//! a crashing input replays with exactly the same pieces.

/// A cursor over the fuzz input, for targets that take parameters (a size
/// limit, a mode, cut points) from its first bytes before the data proper.
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// The next byte, or 0 once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian u16 (0 past the end).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// One of `choices`, picked by the next byte.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }

    /// Is the input used up?
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// Reads a split plan: one control byte, then up to 15 cut points.
    ///
    /// Control byte: low 4 bits = number of cut points (each a u16, taken
    /// modulo `len + 1` once the data is known); bit 7 = feed one byte at a
    /// time instead. Equal cut points give empty pieces, which the parsers
    /// must also accept.
    pub fn plan(&mut self) -> Plan {
        let control = self.byte();
        let count = usize::from(control & 0x0F);
        let raw = (0..count).map(|_| self.u16()).collect();
        Plan {
            one_byte_at_a_time: control & 0x80 != 0,
            raw,
        }
    }
}

/// Where to cut some data into pieces (see [`Input::plan`]).
#[derive(Debug, Clone)]
pub struct Plan {
    one_byte_at_a_time: bool,
    raw: Vec<u16>,
}

impl Plan {
    /// The cut points for data of length `len`, sorted, each in `0..=len`.
    pub fn cuts(&self, len: usize) -> Vec<usize> {
        if self.one_byte_at_a_time {
            return (1..len).collect();
        }
        let mut cuts: Vec<usize> = self
            .raw
            .iter()
            .map(|&c| usize::from(c) % (len + 1))
            .collect();
        cuts.sort_unstable();
        cuts
    }

    /// `data` cut into pieces; concatenated they are `data` again.
    pub fn pieces<'d>(&self, data: &'d [u8]) -> Vec<&'d [u8]> {
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in self.cuts(data.len()) {
            pieces.push(&data[start..cut]);
            start = cut;
        }
        pieces.push(&data[start..]);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_data() {
        let data = b"hello world";
        for control in [0u8, 1, 3, 0x0F, 0x80] {
            let mut bytes = vec![control];
            bytes.extend_from_slice(&[5, 0, 5, 0, 200, 1, 3, 0]);
            let plan = Input::new(&bytes).plan();
            assert_eq!(plan.pieces(data).concat(), data);
        }
    }
}
