//! The chat room on `/` (docs/api.md section 3): everyone connected receives
//! `User<port> joined`, `User<port>: <text>` and `User<port> left`, the
//! joiner and the sender included. `<port>` is the client's TCP source port.
//!
//! Each line is encoded into one text frame once (and compressed once for
//! the members that agreed to compression) and the same bytes are queued
//! on every member's connection (`websocket::Broadcast`).

use super::websocket::Broadcast;
use super::{App, Io};
use crate::net::ConnId;
use crate::wire::ws_frame::opcode;

pub fn join(app: &mut App, io: &mut Io, id: ConnId) {
    let Some(peer) = io.peer(id) else { return };
    app.chat.push((id, peer.port()));
    broadcast(app, io, &format!("User{} joined", peer.port()));
}

pub fn say(app: &mut App, io: &mut Io, id: ConnId, text: &str) {
    let Some(peer) = io.peer(id) else { return };
    broadcast(app, io, &format!("User{}: {text}", peer.port()));
}

/// Called when a member's connection ends, however it ends.
pub fn leave(app: &mut App, io: &mut Io, id: ConnId) {
    let Some(i) = app.chat.iter().position(|&(m, _)| m == id) else {
        return;
    };
    let (_, port) = app.chat.remove(i);
    broadcast(app, io, &format!("User{port} left"));
}

fn broadcast(app: &mut App, io: &mut Io, line: &str) {
    let mut b = Broadcast::new(opcode::TEXT, line.as_bytes().to_vec());
    for i in 0..app.chat.len() {
        let (id, _) = app.chat[i];
        b.send(app, io, id);
    }
}
