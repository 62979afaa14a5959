//! Several terminal-hosts on one database. Each registers itself and beats a heartbeat;
//! each session records its owner; a host presumed dead (silent for three heartbeats)
//! has its sessions closed by the others (`host_lost`), so listings never show a shell
//! that no longer exists. A request for a live session that reached another host is a
//! 409 naming the owner (see [`crate::ws`]): there is never a second shell for one id.
//!
//! WebSocket tickets are kept here too, so that any host redeems what another issued
//! (a load balancer sends the ticket request and the upgrade to different hosts).

use std::time::Duration;

use arcana_core::db::DbError;
use sha2::{Digest, Sha256};

use crate::store::Store;

type Result<T> = std::result::Result<T, DbError>;

/// How many missed heartbeats make a host presumed dead.
pub const MISSED_HEARTBEATS: u32 = 3;

/// Who this host is among several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub advertise_url: String,
}

impl Identity {
    /// From the flags, defaulting to `hostname:port` and `http://<listen address>`.
    pub fn new(
        host_id: Option<&str>,
        advertise_url: Option<&str>,
        addr: std::net::SocketAddr,
    ) -> Identity {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        Identity {
            id: host_id
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("{hostname}:{}", addr.port())),
            advertise_url: advertise_url
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("http://{addr}")),
        }
    }
}

/// The live owner of a session, when it is another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host_id: String,
    pub advertise_url: String,
}

fn cutoff(heartbeat: Duration) -> String {
    let stale = heartbeat * MISSED_HEARTBEATS;
    arcana_core::time::format(
        arcana_core::time::now() - time::Duration::milliseconds(stale.as_millis() as i64),
    )
}

fn ticket_hash(ticket: &str) -> String {
    hex::encode(Sha256::digest(ticket.as_bytes()))
}

impl Store {
    /// Registers (or re-registers, after a restart) this host and closes the sessions it
    /// or a dead host left active, and those of no host (from before hosts were
    /// recorded); returns how many it closed.
    pub async fn register_host(&self, me: &Identity, heartbeat: Duration) -> Result<usize> {
        let now = arcana_core::time::now_string();
        self.query(
            "INSERT INTO terminal_hosts (id, advertise_url, started_at, last_seen) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (id) DO UPDATE SET advertise_url = excluded.advertise_url,
                 started_at = excluded.started_at, last_seen = excluded.last_seen",
            vec![me.id.clone().into(), me.advertise_url.clone().into(), now.clone().into()],
        )
        .await?;
        let rows = self
            .query(
                "UPDATE terminal_sessions SET status = 'closed', ended_at = ?1, end_reason = 'host_restart'
                 WHERE status = 'active' AND id NOT IN (
                     SELECT s.session_id FROM terminal_session_hosts s JOIN terminal_hosts h ON h.id = s.host_id
                     WHERE h.id <> ?2 AND h.last_seen >= ?3)
                 RETURNING id",
                vec![now.into(), me.id.clone().into(), cutoff(heartbeat).into()],
            )
            .await?;
        Ok(rows.rows.len())
    }

    /// Beats this host's heartbeat, then closes the sessions of hosts presumed dead;
    /// returns how many it closed.
    pub async fn heartbeat(&self, me: &Identity, heartbeat: Duration) -> Result<usize> {
        let now = arcana_core::time::now_string();
        self.query(
            "UPDATE terminal_hosts SET last_seen = ?1 WHERE id = ?2",
            vec![now.clone().into(), me.id.clone().into()],
        )
        .await?;
        let rows = self
            .query(
                "UPDATE terminal_sessions SET status = 'closed', ended_at = ?1, end_reason = 'host_lost'
                 WHERE status = 'active' AND id IN (
                     SELECT s.session_id FROM terminal_session_hosts s JOIN terminal_hosts h ON h.id = s.host_id
                     WHERE h.id <> ?2 AND h.last_seen < ?3)
                 RETURNING id",
                vec![now.into(), me.id.clone().into(), cutoff(heartbeat).into()],
            )
            .await?;
        Ok(rows.rows.len())
    }

    /// Records that `host_id` owns session `id`.
    pub async fn set_owner(&self, session_id: &str, host_id: &str) -> Result<()> {
        self.query(
            "INSERT INTO terminal_session_hosts (session_id, host_id) VALUES (?1, ?2)
             ON CONFLICT (session_id) DO UPDATE SET host_id = excluded.host_id",
            vec![session_id.into(), host_id.into()],
        )
        .await
        .map(|_| ())
    }

    /// The host owning an active session, when it is not `me`.
    pub async fn other_owner(&self, session_id: &str, me: &Identity) -> Result<Option<Owner>> {
        let rows = self
            .query(
                "SELECT h.id, h.advertise_url FROM terminal_sessions t
                 JOIN terminal_session_hosts s ON s.session_id = t.id JOIN terminal_hosts h ON h.id = s.host_id
                 WHERE t.id = ?1 AND t.status = 'active' AND h.id <> ?2",
                vec![session_id.into(), me.id.clone().into()],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(Some(Owner {
                host_id: r.text(0)?,
                advertise_url: r.text(1)?,
            })),
            None => Ok(None),
        }
    }

    /// A new single-use ticket for `user_id`, valid for `ttl`.
    pub async fn issue_ticket(&self, user_id: &str, ttl: Duration) -> Result<String> {
        let ticket = crate::session::random_hex(24);
        let now = arcana_core::time::now();
        let expires = now + time::Duration::milliseconds(ttl.as_millis() as i64);
        // Expired tickets go as new ones come: the table stays as small as the traffic.
        self.query(
            "DELETE FROM terminal_tickets WHERE expires_at < ?1",
            vec![arcana_core::time::format(now).into()],
        )
        .await?;
        self.query(
            "INSERT INTO terminal_tickets (ticket_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
            vec![
                ticket_hash(&ticket).into(),
                user_id.into(),
                arcana_core::time::format(expires).into(),
            ],
        )
        .await?;
        Ok(ticket)
    }

    /// Uses a ticket up: its user, if it existed and had not expired.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Option<String>> {
        let rows = self
            .query(
                "DELETE FROM terminal_tickets WHERE ticket_hash = ?1 RETURNING user_id, expires_at",
                vec![ticket_hash(ticket).into()],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let valid =
            arcana_core::time::parse(&r.text(1)?).is_some_and(|e| e > arcana_core::time::now());
        valid.then(|| r.text(0)).transpose()
    }
}

/// Beats the heartbeat every `interval` until the process ends, closing dead hosts'
/// sessions as it goes. A database outage is logged and retried at the next beat.
pub async fn run_heartbeat(store: Store, me: Identity, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.heartbeat(&me, interval).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                count = n,
                "closed the sessions of a terminal-host presumed dead"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot beat the heartbeat"),
        }
    }
}
