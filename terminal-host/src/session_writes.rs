//! What live sessions write to the database (history rows, recording chunks, size
//! changes, the closing row), off the sessions' own tasks.
//!
//! A few writer lanes serve the whole process; a session always uses the same lane, so
//! its writes land in the order it made them, while a slow database round trip for one
//! session does not hold up every other. Sessions keep no writer task or queue of their
//! own, which keeps an idle session small.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, TerminalCommand};

/// Writer lanes: enough to overlap round trips to a remote database.
const LANES: usize = 4;

/// One write of one session.
pub enum Write {
    History(Box<TerminalCommand>),
    Recording(i64, String),
    Size(u16, u16),
    /// The closing row; `done` fires once it (and everything before it) is written.
    Close {
        reason: String,
        exit_code: Option<i64>,
        done: oneshot::Sender<()>,
    },
}

struct Job {
    session_id: Arc<str>,
    write: Write,
}

/// The process's session writers. Cheap to clone.
#[derive(Clone)]
pub struct SessionWrites {
    lanes: Arc<[mpsc::UnboundedSender<Job>]>,
}

impl SessionWrites {
    /// Starts the writer lanes on `store`.
    pub fn start(store: Store) -> SessionWrites {
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run_lane(store.clone(), rx));
                tx
            })
            .collect();
        SessionWrites { lanes }
    }

    /// Queues a write of a session; writes of one session are applied in order.
    pub fn send(&self, session_id: &Arc<str>, write: Write) {
        let lane = lane_of(session_id, self.lanes.len());
        let job = Job {
            session_id: session_id.clone(),
            write,
        };
        if self.lanes[lane].send(job).is_err() {
            tracing::error!(session_id = %session_id, "session writer is gone; write dropped");
        }
    }

    /// Queues the closing row and waits until it is written.
    pub async fn close(&self, session_id: &Arc<str>, reason: &str, exit_code: Option<i64>) {
        let (done, written) = oneshot::channel();
        self.send(
            session_id,
            Write::Close {
                reason: reason.to_string(),
                exit_code,
                done,
            },
        );
        let _ = written.await;
    }
}

/// FNV-1a over the id: stable, cheap, spreads uuids evenly.
fn lane_of(session_id: &str, lanes: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % lanes as u64) as usize
}

async fn run_lane(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(Job { session_id, write }) = rx.recv().await {
        let id = &*session_id;
        let result = match write {
            Write::History(row) => store.insert_history(&row).await,
            Write::Recording(seq, data) => store.append_recording(id, seq, &data).await,
            Write::Size(cols, rows) => store.set_size(id, cols, rows).await,
            Write::Close {
                reason,
                exit_code,
                done,
            } => {
                let now = arcana_core::time::now_string();
                let result = store.close_session(id, &now, &reason, exit_code).await;
                let _ = done.send(());
                result
            }
        };
        if let Err(e) = result {
            tracing::error!(session_id = %id, error = %e, "terminal database write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_always_uses_the_same_lane_and_lanes_are_all_used() {
        let mut used = [0usize; LANES];
        for i in 0..400 {
            let id = format!("00000000-0000-4000-8000-{i:012x}");
            let lane = lane_of(&id, LANES);
            assert_eq!(lane, lane_of(&id, LANES));
            used[lane] += 1;
        }
        assert!(used.iter().all(|&n| n > 40), "{used:?}");
    }
}
