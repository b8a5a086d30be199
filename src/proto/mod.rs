//! Protocol state machines over the wire types: bytes in, decisions out, no
//! sockets.

pub mod ws;
