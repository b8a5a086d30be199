//! The chat room on `/` (API.md section 3): everyone connected receives
//! `User<port> joined`, `User<port>: <text>` and `User<port> left`, the
//! joiner and the sender included. `<port>` is the client's TCP source port.
//!
//! Each line is encoded into one text frame once and the same bytes are
//! queued on every member's connection.

use std::sync::Arc;

use crate::net::Server;
use crate::wire::ws_frame::{self, opcode};

impl Server {
    pub(crate) fn chat_join(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        let line = format!("User{} joined", c.peer.port());
        self.chat.push((key, c.id));
        self.chat_broadcast(&line);
    }

    pub(crate) fn chat_say(&mut self, key: usize, text: &str) {
        let Some(c) = self.conns.get(key) else { return };
        let line = format!("User{}: {text}", c.peer.port());
        self.chat_broadcast(&line);
    }

    /// Called when a member's connection ends, however it ends.
    pub(crate) fn chat_leave(&mut self, key: usize, id: u64) {
        let Some(i) = self.chat.iter().position(|&m| m == (key, id)) else {
            return;
        };
        self.chat.remove(i);
        let port = self.conns.get(key).map_or(0, |c| c.peer.port());
        self.chat_broadcast(&format!("User{port} left"));
    }

    fn chat_broadcast(&mut self, line: &str) {
        let mut frame = Vec::with_capacity(line.len() + 10);
        ws_frame::write_frame(&mut frame, opcode::TEXT, line.as_bytes());
        let frame: Arc<[u8]> = frame.into();
        for i in 0..self.chat.len() {
            let (key, _) = self.chat[i];
            crate::trace::sent_frame(self, key, opcode::TEXT, line.as_bytes());
            self.send_shared(key, &frame);
        }
    }
}
