//! End-to-end tests: the real web server and the real worker, built by their
//! library functions on a free port, against the real RabbitMQ.
//!
//! Each test gets its own data directory and its own queue, so tests run in
//! parallel without stealing each other's jobs. A test that cannot reach
//! RabbitMQ or Chromium fails and says how to get it; none is skipped.

mod browser;
mod harness;
mod images;
mod processes;

mod abuse;
mod cluster;
mod config;
mod crashes;
mod faults;
mod hostile;
mod hosts;
mod in_browser;
mod object_store;
mod operations;
mod ownership;
mod page_code;
mod phone_formats;
mod reconcile;
mod refusals;
mod resumable;
mod thumbnails;
mod upgrade;
