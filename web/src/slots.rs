//! Places for what holds a connection for long (an event stream, an upload,
//! the connection itself): at most so many at once, and at most so many for
//! one client address, so that a few addresses cannot take them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts what is held, in all and per client.
pub struct Slots {
    total: usize,
    per_client: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Everyone's slots are taken.
    All,
    /// This client holds its share already.
    Client,
}

impl Slots {
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self { total, per_client, held: Mutex::default() })
    }

    /// A slot for `client` (`None`: a request that came through no socket, or
    /// through a trusted proxy, which speaks for many: only the total applies).
    pub fn take(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Slot, Full> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.total >= self.total {
            return Err(Full::All);
        }
        if let Some(client) = client {
            let count = held.by_client.entry(client).or_default();
            if *count >= self.per_client {
                return Err(Full::Client);
            }
            *count += 1;
        }
        held.total += 1;
        Ok(Slot { slots: Arc::clone(self), client })
    }

    /// How many are held now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

/// One slot, given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    client: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.total -= 1;
        if let Some(client) = self.client
            && let Some(count) = held.by_client.get_mut(&client)
        {
            *count -= 1;
            if *count == 0 {
                held.by_client.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_everyone_the_total_and_slots_come_back() {
        let slots = Slots::new(3, 2);
        let (a, b, c) = ("10.0.0.1".parse().ok(), "10.0.0.2".parse().ok(), "10.0.0.3".parse().ok());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert_eq!(slots.take(a).err(), Some(Full::Client));
        let _third = slots.take(b).unwrap();
        assert_eq!(slots.take(c).err(), Some(Full::All));
        assert_eq!(slots.take(None).err(), Some(Full::All));
        drop(first);
        assert_eq!(slots.held(), 2);
        let _again = slots.take(a).unwrap();
        assert_eq!(slots.held(), 3);
    }
}
