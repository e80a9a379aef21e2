//! The web server's handlers, tested on the router itself with `oneshot`
//! (see `server`): one test binary, so that the web crate is linked once.

mod access_log;
mod ownership;
mod resumable;
mod server;
