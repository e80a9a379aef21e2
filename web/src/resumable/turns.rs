//! Turns: the requests about one upload on this server, one at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use thumbq_contract::UploadId;
use tokio::sync::watch;

use crate::error::AppError;

/// The requests receiving bytes of an upload on this server. A client whose
/// request was cut asks where the upload stands at once, while the server
/// may still be storing what that request brought: each request about an
/// upload takes its turn, so the answer counts those bytes and none are sent twice.
#[derive(Default)]
pub struct Turns(std::sync::Mutex<HashMap<UploadId, Arc<Lane>>>);

/// One upload's turns: who holds it, and a count of the requests that asked it to stop.
struct Lane {
    held: Arc<tokio::sync::Mutex<()>>,
    stops: watch::Sender<u64>,
}

/// How long a request waits for the one before it on the same upload to end
/// by itself (a cut connection's last bytes are still being read and stored)
/// before asking it to stop.
const TURN_GRACE: Duration = Duration::from_secs(3);
/// How long it then waits for that request to store what it has.
const TURN_STOPPING: Duration = Duration::from_secs(20);

/// A request's turn on an upload: no other request of this server receives it meanwhile.
pub(super) struct Turn {
    // Declared first, dropped first: the turn is given up before its lane is let go of.
    _held: tokio::sync::OwnedMutexGuard<()>,
    lane: LaneHeld,
    /// The stops asked before this turn began: one more means "stop".
    stops_before: u64,
}

/// A request's hold on an upload's lane, while it waits for its turn and while
/// it has it: the last to let go removes the lane, whether it got the turn or
/// was dropped waiting (its client gone).
struct LaneHeld {
    turns: Arc<Turns>,
    upload: UploadId,
    lane: Arc<Lane>,
}

impl Drop for LaneHeld {
    fn drop(&mut self) {
        let mut lanes = self.turns.0.lock().expect("turns");
        // The map's and this one's: no other request holds it.
        if Arc::strong_count(&self.lane) == 2 {
            lanes.remove(&self.upload);
        }
    }
}

impl Turns {
    pub(super) async fn take(self: &Arc<Self>, upload: UploadId) -> Result<Turn, AppError> {
        let lane =
            Arc::clone(self.0.lock().expect("turns").entry(upload).or_insert_with(|| Arc::new(Lane { held: Arc::default(), stops: watch::Sender::new(0) })));
        let lane = LaneHeld { turns: Arc::clone(self), upload, lane };
        let held = match tokio::time::timeout(TURN_GRACE, Arc::clone(&lane.lane.held).lock_owned()).await {
            Ok(held) => held,
            Err(_) => {
                lane.lane.stops.send_modify(|stops| *stops += 1);
                tokio::time::timeout(TURN_STOPPING, Arc::clone(&lane.lane.held).lock_owned()).await.map_err(|_| AppError::UploadBusy)?
            }
        };
        let stops_before = *lane.lane.stops.borrow();
        Ok(Turn { _held: held, lane, stops_before })
    }
}

impl Turn {
    /// Resolves when a later request asks this one to stop.
    pub(super) async fn asked_to_stop(&self) {
        let mut stops = self.lane.lane.stops.subscribe();
        let _ = stops.wait_for(|stops| *stops > self.stops_before).await;
    }
}
